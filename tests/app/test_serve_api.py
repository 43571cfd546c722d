"""fnn serve's JSON API (issue 14): predictions equal fnn predict's, every bad request is a 4xx JSON error and the
server still answers afterwards, 200 concurrent predictions, no path traversal, the limits."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from functional_nn.app.cli import main
from functional_nn.app.serve import MAX_BODY, load_runs, make_server
from pipelines import read_arrays
from tests.app.interrupt import REPO_ROOT

Image = pytest.importorskip("PIL.Image", reason="fnn serve reads images with Pillow (the plot extra)")
CSV = REPO_ROOT / "data" / "fixtures" / "mnist_test_40.csv"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    for name, hidden in (("small", "8"), ("wide", "32")):
        assert main(["train", "--train", str(CSV), "--test", str(CSV), "--out", str(root / name), "--hidden", hidden,
                     "--epochs", "2", "--batch-size", "8", "--quiet"]) == 0
    return [root / "small", root / "wide"]


@pytest.fixture(scope="module")
def url(runs):
    server = make_server(load_runs([str(r) for r in runs]), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call(url, path, body=None, content_type="application/json", method=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def png_of(row: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(row.reshape(28, 28)).save(buf, format="PNG")
    return buf.getvalue()


def test_runs_and_the_page_are_served(url):
    status, kind, body = call(url, "/api/runs")
    runs = json.loads(body)
    assert status == 200 and kind == "application/json" and [r["id"] for r in runs] == ["small", "wide"]
    assert runs[0]["sizes"] == [784, 8, 10] and runs[1]["report"] == "/runs/wide/report.html"
    status, kind, page = call(url, "/")
    assert status == 200 and kind.startswith("text/html") and b'<canvas id="pad"' in page
    for name in ("app.js", "style.css"):
        assert call(url, f"/static/{name}")[0] == 200
    status, kind, report = call(url, "/runs/small/report.html")
    assert status == 200 and b"<html" in report.lower()
    assert call(url, "/runs/small/curves.png")[1] == "image/png"


def test_predictions_match_fnn_predict(url, runs, tmp_path, capsys):
    rows = read_arrays(CSV).x[:5]
    pngs = []
    for i, row in enumerate(rows):
        pngs.append(tmp_path / f"d{i}.png")
        pngs[-1].write_bytes(png_of(row))
    capsys.readouterr()
    assert main(["predict", str(runs[1]), *map(str, pngs), "--json", "--top", "10"]) == 0
    cli = json.loads(capsys.readouterr().out)["predictions"]
    for path, expected in zip(pngs, cli):
        status, _, body = call(url, "/api/predict?run=wide", path.read_bytes(), "image/png")
        answer = json.loads(body)
        assert status == 200 and answer["run"] == "wide" and answer["label"] == expected["label"]
        by_label = {t["label"]: t["probability"] for t in expected["top"]}       # one row vs a batch of five:
        np.testing.assert_allclose(answer["probabilities"], [by_label[c] for c in answer["classes"]],
                                   rtol=1e-5)                                  # the BLAS may round differently
        assert np.asarray(answer["image"]).shape == (28, 28)
    status, _, body = call(url, "/api/predict", {"pixels": rows[0].tolist(), "run": "small"})
    assert status == 200 and json.loads(body)["image"] == rows[0].reshape(28, 28).tolist()


@pytest.mark.parametrize("body, content_type, status, text", [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 422, "expected a JSON object"),
    ({"pixels": [0] * 783}, "application/json", 422, "expected 784 numbers"),
    ({"pixels": [[0] * 28] * 27}, "application/json", 422, "expected 784 numbers"),
    ({"pixels": [300] * 784}, "application/json", 422, "from 0 to 255"),
    ({"pixels": ["a"] * 784}, "application/json", 422, "expected 784 numbers"),
    ({"pixels": [0] * 784, "image": "x"}, "application/json", 422, "exactly one of"),
    ({"pixels": [0] * 784, "run": "nope"}, "application/json", 404, "no such run"),
    ({"pixels": [0] * 784, "run": 3}, "application/json", 422, "run: expected a run id"),
    ({"pixels": [0] * 784, "extra": 1}, "application/json", 422, "unknown field 'extra'"),
    ({"image": "%%%"}, "application/json", 422, "not valid base64"),
    (b"this is not an image", "image/png", 422, "not a readable image"),
    (b"\x00" * 100, "text/plain", 415, "Content-Type text/plain"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "not valid JSON"),
])
def test_bad_requests_get_a_json_4xx_and_the_server_goes_on(url, body, content_type, status, text):
    got, kind, raw = call(url, "/api/predict", body, content_type)
    assert got == status and kind == "application/json", raw
    assert text in json.loads(raw)["error"]
    assert call(url, "/api/runs")[0] == 200


def test_a_blank_drawing_says_there_is_no_digit(url):
    status, _, raw = call(url, "/api/predict", png_of(np.zeros(784, np.uint8)), "image/png")
    assert status == 422 and "digit" in json.loads(raw)["error"]


def test_a_decompression_bomb_and_a_huge_body_are_refused(url):
    buf = io.BytesIO()
    Image.new("L", (20_000, 20_000)).save(buf, format="PNG")        # 400 Mpx, a few hundred kB compressed
    status, _, raw = call(url, "/api/predict", buf.getvalue(), "image/png")
    assert status == 413 and "pixels, more than" in json.loads(raw)["error"]
    import http.client                       # a body announced too big is refused before a byte of it is read
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/api/predict")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and "at most" in json.loads(response.read())["error"]
    conn.close()
    assert call(url, "/api/runs")[0] == 200


@pytest.mark.parametrize("path", ["/runs/small/../../../etc/passwd", "/runs/small/config.json",
                                  "/runs/small/model.npz", "/static/../serve/__init__.py", "/static/%2e%2e/x",
                                  "/runs/../small/report.html", "/runs/none/report.html", "/etc/passwd"])
def test_nothing_outside_the_static_files_and_the_reports_is_served(url, path):
    status, kind, raw = call(url, path)
    assert status == 404 and kind == "application/json" and "error" in json.loads(raw)


def test_other_methods_are_not_allowed(url):
    assert call(url, "/api/predict", b"", method="PUT")[0] == 405
    assert call(url, "/api/runs", b"", "application/json", method="DELETE")[0] == 405


def test_200_concurrent_predictions_are_all_answered_correctly(url, runs):
    rows = read_arrays(CSV).x
    expected = {}
    for i, row in enumerate(rows):
        expected[i] = json.loads(call(url, "/api/predict", {"pixels": row.tolist()})[2])["probabilities"]

    def one(k):
        i = k % len(rows)
        status, _, raw = call(url, "/api/predict", {"pixels": rows[i].tolist()})
        return status == 200 and json.loads(raw)["probabilities"] == expected[i]
    with ThreadPoolExecutor(32) as pool:
        assert all(pool.map(one, range(200)))


def test_the_command_binds_localhost_warns_otherwise_and_stops_cleanly(runs):
    proc = subprocess.Popen([sys.executable, "-m", "functional_nn.app.entry", "serve", str(runs[0]), "--port", "0"],
                            cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "at http://localhost:" in line and "warning" not in line
    port = int(line.split("localhost:")[1].split("/")[0])
    assert call(f"http://127.0.0.1:{port}", "/api/runs")[0] == 200
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0 and "stopped" in proc.stderr.read()
    proc = subprocess.Popen([sys.executable, "-m", "functional_nn.app.entry", "serve", str(runs[0]), "--port", "0",
                             "--host", "0.0.0.0"], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    assert "warning: --host 0.0.0.0" in proc.stderr.readline()
    proc.terminate()
    proc.wait(timeout=30)


def test_a_bad_run_folder_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
