// fnn serve: draw with pointer events (mouse, touch, pen), send the drawing as a PNG at most every 250 ms,
// show the probabilities, the label and the 28x28 input the model received.
"use strict";
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const preview = document.getElementById("preview").getContext("2d");
const runSelect = document.getElementById("run");
const bars = document.getElementById("bars");
const labelOut = document.getElementById("label");
const errorOut = document.getElementById("error");
let drawing = false, last = null, pending = null, inFlight = false, dirty = false, classes = [];
let generation = 0;              // bumped by Clear: answers to requests sent before it are dropped

function clearPad() {
  generation += 1;
  if (pending !== null) { clearTimeout(pending); pending = null; }
  dirty = false;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height);
  labelOut.textContent = "-"; errorOut.textContent = "";
  preview.clearRect(0, 0, 224, 224); showBars(classes.map(() => 0), -1);
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

pad.addEventListener("pointerdown", (e) => {
  drawing = true; last = point(e); pad.setPointerCapture(e.pointerId);
  ctx.beginPath(); ctx.arc(last[0], last[1], 9, 0, 2 * Math.PI); ctx.fillStyle = "#000"; ctx.fill();
  schedule();
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = point(e);
  ctx.strokeStyle = "#000"; ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  last = p; schedule();
});
for (const name of ["pointerup", "pointercancel", "pointerleave"]) {
  pad.addEventListener(name, () => { if (drawing) { drawing = false; schedule(); } });
}

function schedule() {            // debounced: at most one request in flight, one every 250 ms
  dirty = true;
  if (pending === null) pending = setTimeout(send, 250);
}

function send() {
  pending = null;
  if (inFlight) { pending = setTimeout(send, 250); return; }
  dirty = false; inFlight = true;
  const sent = generation;
  pad.toBlob((blob) => post(blob, "image/png", sent).finally(() => { inFlight = false; }), "image/png");
}

async function post(body, type, sent = generation) {
  try {
    const url = "/api/predict?run=" + encodeURIComponent(runSelect.value || "");
    const response = await fetch(url, {method: "POST", headers: {"Content-Type": type}, body});
    const answer = await response.json();
    if (sent !== generation) return;                     // cleared since it was drawn: a stale answer
    if (!response.ok) { errorOut.textContent = answer.error; return; }
    errorOut.textContent = "";
    show(answer);
  } catch (err) {
    errorOut.textContent = "the server did not answer (" + err + ")";
  }
}

function show(answer) {
  labelOut.textContent = answer.label;
  classes = answer.classes;
  showBars(answer.probabilities, answer.index);
  const img = preview.createImageData(28, 28);
  answer.image.flat().forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
  const small = document.createElement("canvas"); small.width = 28; small.height = 28;
  small.getContext("2d").putImageData(img, 0, 0);
  preview.imageSmoothingEnabled = false;
  preview.drawImage(small, 0, 0, 224, 224);
}

function showBars(probabilities, top) {
  bars.replaceChildren(...probabilities.map((p, i) => {
    const li = document.createElement("li");
    li.className = i === top ? "top" : "";
    li.setAttribute("aria-label", `${classes[i]}: ${(100 * p).toFixed(1)} percent`);
    li.innerHTML = `<span class="name"></span><span class="bar"><span class="fill"></span></span>` +
                   `<span class="pct">${(100 * p).toFixed(1)}%</span>`;
    li.querySelector(".name").textContent = classes[i];
    li.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    return li;
  }));
}

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) { clearPad(); post(file, file.type || "application/octet-stream"); }
});
runSelect.addEventListener("change", () => {
  document.getElementById("report").href = `/runs/${encodeURIComponent(runSelect.value)}/report.html`;
  if (dirty || labelOut.textContent !== "-") schedule();
});

fetch("/api/runs").then((r) => r.json()).then((runs) => {
  for (const run of runs) {
    const option = document.createElement("option");
    option.value = run.id;
    const acc = run.test_accuracy === null ? "" : `, ${(100 * run.test_accuracy).toFixed(2)}%`;
    option.textContent = `${run.id} (${run.sizes.join("-")}${acc})`;
    runSelect.append(option);
  }
  if (runs.length) {
    classes = runs[0].classes;
    document.getElementById("report").href = runs[0].report;
  }
  if (runs.length < 2) runSelect.parentElement.hidden = true;
  clearPad();
});
