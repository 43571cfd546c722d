"""``fnn serve RUN_DIR...``: a drawing page and a JSON API over trained runs (the standard library's server).

Why the standard library's ``ThreadingHTTPServer`` and no framework: the page is three static files and the API
two routes, each request is a few milliseconds of NumPy; a framework would add a dependency and nothing a user
of this demo needs. Safe by default: binds 127.0.0.1 (another host prints a warning), bodies are limited to
``MAX_BODY`` bytes and images to ``MAX_PIXELS`` pixels (checked from the header before decoding), every field is
validated with a JSON error and a 4xx status, only the package's own static files and the named runs' report
files are served (by name, from a fixed list: no path is ever built from the URL), and nothing is written.

Routes: ``GET /`` (the page), ``GET /static/NAME``, ``GET /api/runs``, ``POST /api/predict`` (a PNG/JPEG body, or
JSON ``{"pixels": [784 values 0-255] | 28x28 rows, "image": "data:image/png;base64,...", "run": ID}``; answers
``{"run", "label", "index", "probabilities", "image"}``, the image being the 28x28 input exactly as the model
received it before normalization), ``GET /runs/ID/report.html`` and the report's pictures.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources as pkg_resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs
import numpy as np

from functional_nn.app import schema
from functional_nn.app.inference import TrainedModel, load_run
from functional_nn.app.runs import read_metrics
from functional_nn.app.settings import UsageError
from pipelines.images import ImageError, gray_from_bytes, mnist_style

MAX_BODY = 4 << 20                 # bytes of a request body
MAX_PIXELS = 4096 * 4096           # pixels of an uploaded image
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
REPORT_FILES = {"report.html": "text/html; charset=utf-8", "curves.png": "image/png", "confusion.png": "image/png",
                "per_class.png": "image/png", "predictions.png": "image/png", "mistakes.png": "image/png",
                "filters.png": "image/png", "training.gif": "image/gif"}


class RequestError(Exception):
    """A bad request: its HTTP status and a one-line message for the JSON error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@attrs.frozen(eq=False)
class ServedRun:
    id: str
    model: TrainedModel
    test_accuracy: float | None


def load_runs(run_dirs: list[str]) -> dict[str, ServedRun]:
    """The runs to serve, by id (the folder's name, made unique); UsageError naming a folder that is not a run
    of 28x28 images."""
    runs: dict[str, ServedRun] = {}
    for run_dir in run_dirs:
        model = load_run(run_dir)
        if model.n_features != 784:
            raise UsageError(f"{run_dir}: a model of {model.n_features} inputs; fnn serve draws 28x28 digits")
        try:
            accuracy = read_metrics(run_dir)["test_accuracy"]
        except ValueError:
            accuracy = None
        base = Path(run_dir).resolve().name or "run"
        run_id, n = base, 1
        while run_id in runs:
            n += 1
            run_id = f"{base}-{n}"
        runs[run_id] = ServedRun(id=run_id, model=model, test_accuracy=accuracy)
    return runs


def pixels_from_json(obj) -> np.ndarray:
    """784 values 0-255 (a flat list or 28 rows of 28) as uint8, or RequestError 422."""
    try:
        a = np.asarray(obj, dtype=np.float64)
    except (ValueError, TypeError):
        raise RequestError(422, "pixels: expected 784 numbers from 0 to 255 (or 28 rows of 28)") from None
    if a.size != 784 or a.ndim not in (1, 2) or (a.ndim == 2 and a.shape != (28, 28)):
        raise RequestError(422, f"pixels: expected 784 numbers (or 28 rows of 28), got shape {list(a.shape)}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
        raise RequestError(422, "pixels: every value must be a number from 0 to 255")
    return np.rint(a).astype(np.uint8).reshape(784)


def pixels_from_image(data: bytes) -> np.ndarray:
    """An image file's bytes, preprocessed as ``fnn predict`` preprocesses a photo (28x28 uint8, flattened)."""
    try:
        return mnist_style(gray_from_bytes(data, name="image", max_pixels=MAX_PIXELS)).reshape(784)
    except ImageError as e:
        status = 413 if "more than the" in str(e) else 422
        raise RequestError(status, str(e)) from None


def _data_url_bytes(text) -> bytes:
    if not isinstance(text, str) or len(text) > MAX_BODY:
        raise RequestError(422, "image: expected a base64 string or data: URL of a PNG or JPEG")
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(422, "image: not valid base64") from None


def parse_predict(body: bytes, content_type: str, query: dict, runs: dict[str, ServedRun]
                  ) -> tuple[ServedRun, np.ndarray]:
    """(the run, 784 uint8 pixels) of a POST /api/predict, or RequestError."""
    run_id = query.get("run", [None])[0]
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith("image/"):
        pixels = pixels_from_image(body)
    elif kind in ("application/json", ""):
        try:
            obj = schema.parse_json(body.decode("utf-8"), "request")
        except (UnicodeDecodeError, schema.RunFileError) as e:
            raise RequestError(400, f"request body: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise RequestError(422, "request body: expected a JSON object with 'pixels' or 'image'")
        unknown = sorted(set(obj) - {"pixels", "image", "run"})
        if unknown:
            raise RequestError(422, f"request body: unknown field {unknown[0]!r} (known: pixels, image, run)")
        if ("pixels" in obj) == ("image" in obj):
            raise RequestError(422, "request body: give exactly one of 'pixels' and 'image'")
        if "run" in obj:
            if not isinstance(obj["run"], str):
                raise RequestError(422, "run: expected a run id (a string; see GET /api/runs)")
            run_id = obj["run"]
        pixels = (pixels_from_json(obj["pixels"]) if "pixels" in obj
                  else pixels_from_image(_data_url_bytes(obj["image"])))
    else:
        raise RequestError(415, f"Content-Type {kind}: send application/json or an image (image/png, image/jpeg)")
    if run_id is None:
        run_id = next(iter(runs))
    if run_id not in runs:
        raise RequestError(404, f"run {run_id!r}: no such run (see GET /api/runs)")
    return runs[run_id], pixels


def predict(run: ServedRun, pixels: np.ndarray) -> dict:
    """The API's answer for one 28x28 input."""
    probs = run.model.predict_proba(pixels[None, :])[0]
    index = int(np.argmax(probs))
    return {"run": run.id, "label": run.model.classes[index], "index": index,
            "probabilities": [float(p) for p in probs], "classes": list(run.model.classes),
            "image": pixels.reshape(28, 28).tolist()}


def runs_json(runs: dict[str, ServedRun]) -> list[dict]:
    return [{"id": r.id, "sizes": list(r.model.sizes), "activation": r.model.activation, "dataset": r.model.dataset,
             "classes": list(r.model.classes), "test_accuracy": r.test_accuracy,
             "report": f"/runs/{r.id}/report.html"} for r in runs.values()]


class Handler(BaseHTTPRequestHandler):
    """One request; the runs are the server's (``server.runs``)."""

    server_version = "fnn-serve"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):        # quiet: the terminal shows the URL and errors only
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message, "status": status})

    def do_GET(self):
        try:
            self._get(urlsplit(self.path).path)
        except RequestError as e:
            self._error(e.status, str(e))

    do_HEAD = do_GET

    def _get(self, path: str) -> None:
        runs = self.server.runs
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "static" and parts[2] in STATIC:
            body = pkg_resources.files("functional_nn.app.serve").joinpath("static", parts[2]).read_bytes()
            return self._send(200, body, STATIC[parts[2]])
        if path == "/api/runs":
            return self._json(200, runs_json(runs))
        if len(parts) == 4 and parts[1] == "runs" and parts[2] in runs and parts[3] in REPORT_FILES:
            file = runs[parts[2]].model.run_dir / "plots" / parts[3]
            try:
                schema.check_regular_file(file, str(file))
                return self._send(200, file.read_bytes(), REPORT_FILES[parts[3]])
            except (schema.RunFileError, OSError):
                raise RequestError(404, f"{parts[3]}: this run has no such picture (fnn report draws them)") from None
        raise RequestError(404, "no such page (see / and /api/runs)")

    def do_POST(self):
        try:
            url = urlsplit(self.path)
            if url.path != "/api/predict":
                raise RequestError(404, "no such endpoint (POST /api/predict)")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise RequestError(411, "a Content-Length header is required")
            if int(length) > MAX_BODY:
                self.close_connection = True
                raise RequestError(413, f"request body of {length} bytes: at most {MAX_BODY}")
            body = self.rfile.read(int(length))
            run, pixels = parse_predict(body, self.headers.get("Content-Type", ""), parse_qs(url.query),
                                        self.server.runs)
            self._json(200, predict(run, pixels))
        except RequestError as e:
            self._error(e.status, str(e))

    def _not_allowed(self):
        self._error(405, f"{self.command} is not allowed here (GET pages, POST /api/predict)")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class _Server(ThreadingHTTPServer):
    request_queue_size = 128        # many clients at once are queued, not reset (the default backlog is 5)
    daemon_threads = True


def make_server(runs: dict[str, ServedRun], host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A threading HTTP server over ``runs`` (port 0: any free port), not yet serving."""
    server = _Server((host, port), Handler)
    server.daemon_threads = True
    server.runs = runs
    return server


def serve_command(args) -> int:
    """``fnn serve RUN_DIR... [--host H] [--port P] [--open]``: serve until Ctrl-C."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    runs = load_runs(args.run_dirs)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"fnn serve: warning: --host {args.host} makes the page and API reachable from other machines "
              "(no authentication)", file=sys.stderr)
    try:
        server = make_server(runs, args.host, args.port)
    except OSError as e:
        raise UsageError(f"--port {args.port}: cannot listen on {args.host}: {e.strerror or e}") from None
    host, port = server.server_address[:2]
    url = f"http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port}/"
    print(f"fnn serve: {len(runs)} run(s) ({', '.join(runs)}) at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    if args.open:
        import webbrowser
        webbrowser.open(url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("fnn serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def sample_drawing_png() -> bytes:
    """A 280x280 canvas with a "3" drawn in 18-pixel black strokes on white, as the page sends a drawing."""
    import io

    from PIL import Image, ImageDraw
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line([(90, 50), (130, 40), (170, 60), (170, 90), (120, 125), (170, 150), (170, 185),
                                (130, 210), (85, 200)], fill="black", width=18)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def default_network_run(seed: int = 0) -> ServedRun:
    """A served run of the default network (784-256-128-10, freshly initialized: its timing is a trained one's)."""
    import functional_nn as fnn
    sizes = (784, 256, 128, 10)
    model = TrainedModel(params=fnn.init_mlp(np.random.default_rng(seed), list(sizes)), sizes=sizes,
                         activation="relu", normalization={"kind": "scale"}, dtype="float32",
                         classes=tuple("0123456789"), image_shape=(28, 28), dataset=None, run_dir=Path("."),
                         checkpoint="model")
    return ServedRun(id="default", model=model, test_accuracy=None)


def round_trip_seconds(run: ServedRun, png: bytes, repeats: int = 50) -> list[float]:
    """Seconds of one drawing's prediction (preprocess the PNG + forward pass), for the benchmark."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict(run, pixels_from_image(png))
        out.append(time.perf_counter() - t0)
    return out
