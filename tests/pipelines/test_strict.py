"""Strict input types (issue 11, classes 2, 3 and the parse cache of 5): every example of the fault campaign as a
test, each stated as the class it stands for."""

from __future__ import annotations

import gzip
import os
import threading

import numpy as np
import pytest

from pipelines import DataError, read_arrays, read_chunks
from pipelines.io import sources
from pipelines.io.csv_format import csv_row_lines

OLD = 10**18           # an mtime long past (ns): files written by a test would otherwise be "just modified"


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes() + payload


def write_pair(tmp_path, images: bytes, labels: bytes, *, gz: bool = False):
    suffix = ".gz" if gz else ""
    ip, lp = tmp_path / f"t-images-idx3-ubyte{suffix}", tmp_path / f"t-labels-idx1-ubyte{suffix}"
    ip.write_bytes(gzip.compress(images) if gz else images)
    lp.write_bytes(gzip.compress(labels) if gz else labels)
    return ip, lp


GOOD_IMAGES = idx_bytes(0x08, (2, 2, 2), bytes(range(8)))
GOOD_LABELS = idx_bytes(0x08, (2,), b"\x01\x02")


# ------------------------------------------------------------------------------------------------ IDX types

@pytest.mark.parametrize("code, name, payload", [
    (0x0B, "int16", np.array([300, -5, 0, 1, 2, 3, 4, 5] * 1, ">i2").tobytes()),
    (0x0C, "int32", np.array([300, -5, 0, 1, 2, 3, 4, 5], ">i4").tobytes()),
    (0x0D, "float32", np.array([0.5, np.nan, np.inf, 1, 2, 3, 4, 5], ">f4").tobytes()),
    (0x0E, "float64", np.array([0.5, np.nan, np.inf, 1, 2, 3, 4, 5], ">f8").tobytes()),
    (0x09, "signed byte", np.array([-5, 0, 1, 2, 3, 4, 5, 6], ">i1").tobytes()),
])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_of_any_type_but_unsigned_bytes_are_refused_naming_the_type(tmp_path, code, name, payload, gz):
    ip, _ = write_pair(tmp_path, idx_bytes(code, (2, 2, 2), payload), GOOD_LABELS, gz=gz)
    with pytest.raises(DataError, match=rf"IDX images of type {name} \(0x{code:02x}\): only unsigned bytes"):
        read_arrays(ip)


def test_float_labels_are_refused_not_truncated(tmp_path):
    ip, _ = write_pair(tmp_path, GOOD_IMAGES, idx_bytes(0x0D, (2,), np.array([2.7, 1.0], ">f4").tobytes()))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: magic: IDX labels of type float32"):
        read_arrays(ip)


@pytest.mark.parametrize("dims", [(4_000_000_000, 0), (0, 28, 28), (3, 0, 5), (2**32 - 1, 2**32 - 1, 2**32 - 1)])
def test_overflowing_or_zero_dimensions_are_refused_at_once(tmp_path, dims):
    ip, _ = write_pair(tmp_path, idx_bytes(0x08, dims, b""), idx_bytes(0x08, (dims[0],), b""))
    with pytest.raises(DataError, match=r": dims: dimension sizes .* each must be at least 1"):
        read_arrays(ip, label_col=None)
    with pytest.raises(DataError, match=r": dims: "):                 # the stream too: no spinning on 0-byte rows
        next(read_chunks(ip, label_col=None))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("which", ["images", "labels"])
def test_bytes_after_the_declared_data_are_an_error(tmp_path, gz, which):
    images, labels = GOOD_IMAGES, GOOD_LABELS
    if which == "images":
        images += b"\x00"
    else:
        labels += b"\x07\x07"
    ip, lp = write_pair(tmp_path, images, labels, gz=gz)
    with pytest.raises(DataError, match="bytes after the declared data") as info:
        read_arrays(ip)
    assert str(info.value).startswith(str(ip if which == "images" else lp))


def test_a_header_declaring_far_more_than_the_file_holds_fails_before_reading(tmp_path):
    ip, _ = write_pair(tmp_path, idx_bytes(0x08, (1_000_000, 1000, 1000), bytes(100)), GOOD_LABELS)
    with pytest.raises(DataError, match=r"truncated: the header says 1000000 images"):
        next(read_chunks(ip, label_col=None))


def test_good_idx_still_reads_raw_and_gzipped(tmp_path):
    for gz in (False, True):
        folder = tmp_path / str(gz)
        folder.mkdir()
        ip, _ = write_pair(folder, GOOD_IMAGES, GOOD_LABELS, gz=gz)
        c = read_arrays(ip)
        assert c.x.dtype == np.uint8 and c.x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and c.y.tolist() == [1, 2]


# ------------------------------------------------------------------------------------------------ CSV

@pytest.mark.parametrize("field", [b"2_5", b"+3", b"5.0", b"1e2", b"0x1", "\u0663".encode(), b"2 5", b"\xef\xbb\xbf7"])
def test_csv_fields_are_ascii_digits_only(tmp_path, field):
    path = tmp_path / "d.csv"
    path.write_bytes(b"1,2,3\n4," + field + b",6\n")
    with pytest.raises(DataError, match=r"d\.csv:2: column 2"):
        read_arrays(path)


def test_a_bom_is_stripped_not_taken_for_a_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf1,2,3\r\n4,5,6\r\n")
    c = read_arrays(path)
    assert c.y.tolist() == [1, 4] and c.x.tolist() == [[2, 3], [5, 6]]
    assert csv_row_lines(path)[0].tolist() == [1, 2]
    headed = tmp_path / "headed.csv"
    headed.write_bytes(b"\xef\xbb\xbflabel,a,b\n1,2,3\n")
    assert read_arrays(headed, label_col="label").y.tolist() == [1]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r", b"\r\r\n"])
def test_every_line_end_reads_the_same_rows(tmp_path, end):
    rows = np.random.default_rng(0).integers(0, 256, (50, 6))
    rows[:, 0] %= 10
    path = tmp_path / "d.csv"
    path.write_bytes(end.join(b",".join(b"%d" % v for v in r) for r in rows) + end)
    c = read_arrays(path)
    np.testing.assert_array_equal(c.y, rows[:, 0])
    np.testing.assert_array_equal(c.x, rows[:, 1:])


def test_blank_lines_and_odd_line_ends_cost_linear_time(tmp_path, monkeypatch):
    """Counted, not timed: a file of 2^20 blank lines is parsed without a Python step per line (the precise
    per-line parser is never called), and so is a file whose lines end in \\r\\r\\n."""
    from pipelines.io import csv_format
    calls = []
    real = csv_format._slow_line
    monkeypatch.setattr(csv_format, "_slow_line", lambda *a: calls.append(1) or real(*a))
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"1,2,3\n" + b"\n" * (1 << 20) + b" \t\n" * 1000 + b"4,5,6\n")
    assert read_arrays(blank).y.tolist() == [1, 4]
    rrn = tmp_path / "rrn.csv"
    rrn.write_bytes(b"\r\r\n".join(b"%d,1,2" % (i % 10) for i in range(20000)))
    assert len(read_arrays(rrn).y) == 20000
    assert calls == []


# ------------------------------------------------------------------------------------------------ special files

@pytest.mark.parametrize("name", ["d.csv", "t-images-idx3-ubyte"])
def test_a_fifo_is_refused_before_it_is_opened(tmp_path, name):
    path = tmp_path / name
    os.mkfifo(path)                      # opening it would block until a writer came
    with pytest.raises(DataError, match="not a regular file"):
        read_arrays(path)


def test_a_file_swapped_for_a_fifo_after_the_check_does_not_hang(tmp_path):
    path = tmp_path / "d.csv"
    os.mkfifo(path)
    with pytest.raises(DataError, match="not a regular file"):
        sources.open_regular(path)


def test_dev_zero_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        read_arrays("/dev/zero")


# ------------------------------------------------------------------------------------------------ the parse cache

def test_a_source_changed_while_it_is_parsed_never_poisons_the_cache(tmp_path, monkeypatch):
    """The file is rewritten (same size) between its first and its last block: the read fails, nothing is cached,
    and the next read gives the new rows under the new digest."""
    path = tmp_path / "d.csv"
    old = b"".join(b"%d,%d,%d\n" % (i % 10, i % 256, 7) for i in range(4000))
    new = old.replace(b",7\n", b",9\n")
    path.write_bytes(old)
    os.utime(path, ns=(OLD, OLD))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 4096)
    real = sources._byte_blocks

    def changing(p, block_bytes, tally=None):
        for i, block in enumerate(real(p, block_bytes, tally)):
            if i == 1:
                path.write_bytes(new)
                os.utime(path, ns=(OLD + 5, OLD + 5))
            yield block
    monkeypatch.setattr(sources, "_byte_blocks", changing)
    from pipelines.io import csv_format
    monkeypatch.setattr(csv_format, "_byte_blocks", changing)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="changed while it was being read"):
        read_arrays(path, cache_dir=cache)
    assert not cache.exists() or not list(cache.glob("*.npy"))
    monkeypatch.undo()
    c = read_arrays(path, cache_dir=cache)
    assert set(c.x[:, 1].tolist()) == {9}
    assert set(read_arrays(path, cache_dir=cache).x[:, 1].tolist()) == {9}


def test_a_just_modified_source_is_not_cached(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"1,2,3\n")
    read_arrays(path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*"))
    os.utime(path, ns=(OLD, OLD))
    read_arrays(path, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "wrong dtype", "short labels", "label out of range", "fifo",
                                    "record list", "record deep", "record path escape"])
def test_damaged_cache_files_are_parsed_again_never_believed(tmp_path, damage):
    path = tmp_path / "d.csv"
    path.write_bytes(b"1,2,3\n4,5,6\n")
    os.utime(path, ns=(OLD, OLD))
    cache = tmp_path / "cache"
    truth = read_arrays(path, cache_dir=cache)
    x_file = next(cache.glob("*.x.npy"))
    y_file = next(cache.glob("*.y.npy"))
    record = next(cache.glob("*.json"))
    if damage == "garbage":
        x_file.write_bytes(b"\x93NUMPY garbage")
    elif damage == "wrong dtype":
        np.save(x_file, np.zeros((2, 2), np.float64))
    elif damage == "short labels":
        np.save(y_file, np.zeros(1, np.int64))
    elif damage == "label out of range":
        np.save(y_file, np.array([1, 99], np.int64))
    elif damage == "fifo":
        x_file.unlink()
        os.mkfifo(x_file)
    elif damage == "record list":
        record.write_text("[]")
    elif damage == "record deep":
        record.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "record path escape":
        text = record.read_text().replace(x_file.name, "../../etc/passwd.npy")
        record.write_text(text)
    done = threading.Event()
    result = {}

    def read():
        result["c"] = read_arrays(path, cache_dir=cache)
        done.set()
    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    assert done.wait(30), "reading hung on the damaged cache"
    np.testing.assert_array_equal(result["c"].x, truth.x)
    np.testing.assert_array_equal(result["c"].y, truth.y)


@pytest.mark.parametrize("end", [b"\r", b"\r\r\n", b"\r\n"])
@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_line_ends_split_across_blocks_read_the_same(tmp_path, monkeypatch, end, block):
    """A \\r at the end of one block and its \\n at the start of the next (or not) is one line end, however the
    file is cut into blocks; found by the fuzzer: a block of BOM and \\r only."""
    monkeypatch.setattr(sources, "BLOCK_BYTES", block)
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf" + end.join([b"1,2,3", b"4,5,6", b"7,8,9"]) + end)
    c = read_arrays(path)
    assert c.y.tolist() == [1, 4, 7] and c.x.tolist() == [[2, 3], [5, 6], [8, 9]]
    assert csv_row_lines(path, block_bytes=block)[0].tolist() == ([1, 2, 3] if end != b"\r\r\n" else [1, 3, 5])


def test_a_file_of_a_bom_and_line_ends_only_is_empty(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\r")
    with pytest.raises(DataError, match="empty file"):
        read_arrays(path)
