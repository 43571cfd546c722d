"""The atomic writer (pipelines.io.atomic): whole files or none, no temporary file left behind."""

import stat

import pytest

from pipelines.io import atomic
from pipelines.io.atomic import atomic_file, atomic_write_bytes


def test_atomic_write_creates_and_replaces_leaving_no_temp_file(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644             # not mkstemp's private 0o600


@pytest.mark.parametrize("where", ["write", "replace"])
def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, where):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync" if where == "write" else "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]




def test_an_exception_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "data.csv"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="bad checksum"):
        with atomic_file(target, suffix=".part", fsync=False) as f:
            f.write(b"half of the new")
            raise ValueError("bad checksum")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["data.csv"]
