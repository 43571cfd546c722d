"""Readers: round trips, chunked == whole, real fixtures, the malformed corpus, skip reports, cache."""

import gzip
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from tests.strategies import labelled_images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import DataError, DataWarning, read_arrays, read_chunks, write_csv, write_idx
from pipelines.io import csv_format, csv_row_lines, sources
from pipelines.io.bad_rows import _BadRows
from pipelines.io.csv_format import _csv_parts, _CsvSpec, _fast_block
from pipelines.io.sources import BLOCK_BYTES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "data" / "fixtures"
MALFORMED = Path(__file__).resolve().parent / "malformed"
FIXTURE_FORMS = ["mnist_test_40.csv", "mnist_test_40.csv.gz", "mnist40-images-idx3-ubyte",
                 "mnist40-images-idx3-ubyte.gz"]
FIXTURE_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4, 6, 6, 5, 4, 0, 7, 1, 3, 3, 7, 2, 2, 2, 3, 5, 6, 8, 8, 8, 8]
tmp_settings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------------------ round trips
@tmp_settings
@given(data=labelled_images(), header=st.booleans(), line_end=st.sampled_from(["\n", "\r\n"]),
       gz=st.booleans(), chunk_rows=st.integers(1, 50))
def test_csv_round_trip(tmp_path, data, header, line_end, gz, chunk_rows):
    x, y = data
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))
    path = write_csv(tmp_path / ("t.csv.gz" if gz else "t.csv"), x, y, header=header, line_end=line_end)
    whole = read_arrays(path, header=header)
    np.testing.assert_array_equal(whole.x, x)
    np.testing.assert_array_equal(whole.y, y)
    assert whole.x.dtype == np.uint8 and whole.y.dtype == np.int64
    chunks = list(read_chunks(path, chunk_rows=chunk_rows, header=header))
    assert all(len(c) == chunk_rows for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk_rows
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), y)


@tmp_settings
@given(data=labelled_images(), gz=st.booleans(), chunk_rows=st.integers(1, 50))
def test_idx_round_trip(tmp_path, data, gz, chunk_rows):
    x, y = data
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))
    suffix = ".gz" if gz else ""
    images = write_idx(tmp_path / f"r-images-idx3-ubyte{suffix}", x.reshape(len(x), 1, -1))
    write_idx(tmp_path / f"r-labels-idx1-ubyte{suffix}", y.astype(np.uint8))
    whole = read_arrays(images)
    np.testing.assert_array_equal(whole.x, x)
    np.testing.assert_array_equal(whole.y, y)
    chunks = list(read_chunks(images, chunk_rows=chunk_rows))
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), y)


@settings(max_examples=15, deadline=None)
@given(data=labelled_images(max_rows=200), block=st.integers(8, 400), crlf=st.booleans())
def test_blocked_parse_equals_whole(data, block, crlf):
    """Any block size (lines cut across blocks, fast path or bisect) gives the same arrays."""
    x, y = data
    end = "\r\n" if crlf else "\n"
    text = "".join(",".join(map(str, [label, *row])) + end for label, row in zip(y.tolist(), x.tolist()))
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fnn-blocked-{os.getpid()}.csv"
    path.write_text(text, newline="")
    try:
        parts = list(_csv_parts(path, header=False, label_col=0, n_classes=10, bad=_BadRows(path, "raise"),
                                block_bytes=block))
    finally:
        path.unlink()
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)


def test_odd_but_valid_fields_take_the_precise_path(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"1, 2,3\n2,0004,5\t\n\n3,6,7\n")  # blanks around a field, leading zeros, a blank line
    chunk = read_arrays(path)
    assert chunk.x.tolist() == [[2, 3], [4, 5], [6, 7]] and chunk.y.tolist() == [1, 2, 3]


@pytest.mark.parametrize("text, accepted", [
    (b"1,2,3\n0,255,9\n", True), (b"1,2,3\r\n0,255,9\r\n", True), (b"1,2,3\n0,255,9\r\n", True),  # LF, CRLF, both
    (b"1,007,99\n", True),  # leading zeros, up to 3 digits
    (b"1,1000,2\n", False), (b"1,0004,2\n", False),  # 4 digits: the precise parser decides (error, or 4)
    (b"1,256,2\n", False), (b"10,2,3\n", False), (b"1,,3\n", False), (b"1, 2,3\n", False),  # > 255, label 10, empty
    (b"1,2\n", False), (b"1,2,3,4\n", False), (b"1,2,3\r4\n", False), (b"1,2.0,3\n", False), (b"1,a,3\n", False),
])
def test_fast_path_takes_plain_fields_only(text, accepted):
    """What the vectorised path accepts (else the block is bisected and parsed line by line: same rows, slower)."""
    spec = _CsvSpec(Path("t.csv"), 3, 0, None, 10)
    fast = _fast_block(text, spec)
    assert (fast is not None) == accepted
    if accepted:
        rows = [[int(v) for v in line.split(b",")] for line in text.splitlines()]
        assert fast[0].tolist() == [r[1:] for r in rows] and fast[1].tolist() == [r[0] for r in rows]
        assert fast[0].dtype == np.uint8 and fast[1].dtype == np.int64


def test_four_digit_fields_are_judged_by_the_precise_parser(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"1,2\n1,1000\n")
    with pytest.raises(DataError, match=r"t\.csv:2: column 2: pixel value 1000 outside \[0, 255\]"):
        read_arrays(path)


def test_mixed_line_ends_and_no_final_newline(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"1,2\r\n3,4\n5,6\r\n7,8")
    chunk = read_arrays(path)
    assert chunk.x.ravel().tolist() == [2, 4, 6, 8] and chunk.y.tolist() == [1, 3, 5, 7]


def test_multi_member_gzip(tmp_path):
    path = tmp_path / "two.csv.gz"
    path.write_bytes(gzip.compress(b"1,2\n") + gzip.compress(b"3,4\n"))
    assert read_arrays(path).y.tolist() == [1, 3]



@settings(max_examples=30, deadline=None)
@given(data=labelled_images(max_rows=30), blanks=st.lists(st.sampled_from(["", " ", "\t", " \t"]), max_size=30),
       gaps=st.lists(st.integers(0, 30), max_size=30), header=st.booleans(), crlf=st.booleans(),
       final_newline=st.booleans(), gz=st.booleans(), block=st.integers(1, 200), bad=st.integers(0, 29))
def test_csv_row_lines_are_the_lines_data_errors_name(data, blanks, gaps, header, crlf, final_newline, gz, block, bad):
    """Blank lines anywhere, header or not, CRLF, gzip, any block size: line i of ``csv_row_lines`` is row i's."""
    x, y = data
    end = "\r\n" if crlf else "\n"
    rows = [",".join(map(str, [label, *row])) for label, row in zip(y.tolist(), x.tolist())]
    lines = ([",".join(["label", *map(str, range(x.shape[1]))])] if header else []) + rows
    for blank, gap in zip(blanks, gaps):  # blank lines, each before some line
        lines.insert(min(gap, len(lines)), blank)
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()][1 if header else 0 :]
    expected = [n for n, _ in numbered]
    text = end.join(lines) + (end if final_newline else "")
    path = Path(tempfile.mkdtemp()) / ("t.csv.gz" if gz else "t.csv")
    try:
        path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
        got, n_fields = csv_row_lines(path, block_bytes=block)
        assert got.dtype == np.int64 and got.tolist() == expected and n_fields == x.shape[1] + 1
        assert len(read_arrays(path).x) == len(got)
        bad %= len(rows)
        broken = [f"-1{line[line.index(','):]}" if line == rows[bad] else line for line in lines]  # label -1
        first_bad = next(n for n, line in numbered if line == rows[bad])
        broken_text = (end.join(broken) + (end if final_newline else "")).encode()
        path.write_bytes(gzip.compress(broken_text) if gz else broken_text)
        with pytest.raises(DataError) as error:
            read_arrays(path)
        assert error.value.line == first_bad
    finally:
        shutil.rmtree(path.parent)


def test_csv_row_lines_of_a_file_without_rows(tmp_path):
    (tmp_path / "blank.csv").write_bytes(b"\n \r\n\n")
    with pytest.raises(DataError, match="empty file"):
        csv_row_lines(tmp_path / "blank.csv")
    (tmp_path / "head.csv").write_bytes(b"\nlabel,a,b\n\n")
    lines, n_fields = csv_row_lines(tmp_path / "head.csv")
    assert lines.tolist() == [] and n_fields == 3

# ------------------------------------------------------------------------------------------ layouts, columns
def test_fixture_forms_hold_the_same_real_rows():
    chunks = [read_arrays(FIXTURES / name) for name in FIXTURE_FORMS]
    for chunk in chunks:
        assert chunk.x.shape == (40, 784) and chunk.x.dtype == np.uint8
        assert chunk.y.tolist() == FIXTURE_LABELS
        np.testing.assert_array_equal(chunk.x, chunks[0].x)
    assert np.bincount(chunks[0].y).tolist() == [4] * 10
    assert 0 < chunks[0].x.mean() < 60 and chunks[0].x.max() == 255  # real digits: mostly black, some white


def test_label_column_by_name_index_or_absent(tmp_path):
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    y = np.array([3, 1, 2])
    path = write_csv(tmp_path / "t.csv", x, y)  # header: label,1,2,3,4
    by_name = read_arrays(path, label_col="label")
    assert by_name.y.tolist() == [3, 1, 2] and by_name.x.tolist() == x.tolist()
    last = read_arrays(path, label_col=-1, n_classes=256)
    assert last.y.tolist() == x[:, -1].tolist() and last.x.tolist() == np.column_stack([y, x[:, :-1]]).tolist()
    unlabelled = read_arrays(path, label_col=None)
    assert unlabelled.y is None and unlabelled.x.shape == (3, 5)
    with pytest.raises(DataError, match=r"t\.csv:1: no column named 'digit'"):
        read_arrays(path, label_col="digit")


def test_digit_recognizer_layouts(tmp_path):
    names = ",".join(f"pixel{j}" for j in range(4))
    train = tmp_path / "train.csv"
    train.write_text(f"label,{names}\n5,0,1,2,3\n")
    test = tmp_path / "test.csv"
    test.write_text(f"{names}\n0,1,2,3\n9,9,9,9\n")
    assert read_arrays(train).y.tolist() == [5]
    chunk = read_arrays(test, label_col=None)
    assert chunk.y is None and chunk.x.tolist() == [[0, 1, 2, 3], [9, 9, 9, 9]]


def test_idx_without_labels(tmp_path):
    images = write_idx(tmp_path / "u-images-idx3-ubyte", np.zeros((2, 2, 2), np.uint8))
    chunk = read_arrays(images, label_col=None)
    assert chunk.y is None and chunk.x.shape == (2, 4)


def test_real_mnist_sized_rows_stream(tmp_path):
    """Rows of 785 columns across many blocks: chunk boundaries never lose or split a row."""
    rng = np.random.default_rng(0)
    x = (rng.random((3000, 784)) < 0.2) * rng.integers(0, 256, (3000, 784))
    y = rng.integers(0, 10, 3000)
    path = write_csv(tmp_path / "big.csv", x, y, line_end="\r\n")
    assert path.stat().st_size > 2 * BLOCK_BYTES
    chunks = list(read_chunks(path, chunk_rows=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 1000]
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)


# --------------------------------------------------------------------------------------- the malformed corpus
# (file, read_arrays options, expected message after "path")
CORPUS = [
    ("missing.csv", {}, ":0: no such file"),
    ("empty.csv", {}, ":0: empty file (0 bytes)"),
    ("blank_lines.csv", {}, ":0: empty file (no data rows)"),
    ("header_only.csv", {}, ":1: header only, no data rows"),
    ("wrong_columns.csv", {}, ":3: expected 4 columns, got 3"),
    ("too_many_columns.csv", {}, ":3: expected 4 columns, got 5"),
    ("truncated_row.csv", {}, ":3: expected 4 columns, got 3"),
    ("non_numeric.csv", {}, ":3: column 3 ('p2'): non-numeric field 'abc'"),
    ("empty_field.csv", {}, ":2: column 3 ('p2'): empty field"),
    ("nan.csv", {}, ":2: column 3 ('p2'): 'nan' is NaN or inf"),
    ("inf.csv", {}, ":2: column 2: 'inf' is NaN or inf"),
    ("pixel_too_big.csv", {}, ":4: column 4 ('p3'): pixel value 256 outside [0, 255]"),
    ("pixel_negative.csv", {}, ":2: column 2 ('p1'): pixel value -1 outside [0, 255]"),
    ("pixel_fraction.csv", {}, ":2: column 2 ('p1'): pixel '0.5' is not an integer"),
    ("label_fraction.csv", {}, ":2: column 1 ('label'): label '3.5' is not an integer"),
    ("label_too_big.csv", {}, ":3: column 1 ('label'): label 10 outside [0, 10)"),
    ("label_negative.csv", {}, ":1: column 1 (label): label -1 outside [0, 10)"),
    ("truncated.csv.gz", {}, ":205: truncated gzip stream (the file ends before the end-of-stream marker)"),
    ("not_gzip.csv.gz", {}, ":0: not a gzip file (name ends in .gz but the gzip magic bytes are missing)"),
    ("bad_magic-images-idx3-ubyte", {}, ": magic: expected 0x0000080N with N >= 2 (images), got 0x00000801"),
    ("short_header-images-idx3-ubyte", {}, ": dims: truncated: expected 3 dimension sizes, the file ends first"),
    ("truncated-images-idx3-ubyte", {}, ": data: truncated: the header says 3 images of (2, 2), the file holds 2"),
    ("truncated_gz-images-idx3-ubyte.gz", {}, ": data: truncated gzip stream"),
    ("count-images-idx3-ubyte", {}, ": count: 3 images, but "),
    ("bad_label-images-idx3-ubyte", {}, ": item 1: label 12 outside [0, 10)"),
    ("no_labels-images-idx3-ubyte", {}, ": labels: no labels file beside it"),
]


@pytest.mark.parametrize("name, options, expected", CORPUS, ids=[c[0] for c in CORPUS])
@pytest.mark.parametrize("reader", ["read_arrays", "read_chunks"])
def test_malformed_corpus(name, options, expected, reader):
    path = MALFORMED / name
    with pytest.raises(DataError) as info:
        if reader == "read_arrays":
            read_arrays(path, **options)
        else:
            list(read_chunks(path, chunk_rows=2, **options))
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{path}{expected}"), str(info.value)


def test_every_corpus_file_is_in_the_table():
    listed = {c[0] for c in CORPUS}
    for path in MALFORMED.iterdir():
        partner = path.name.replace("labels-idx1", "images-idx3")
        assert path.name in listed or partner in listed or "wrong_labels" in path.name, path.name


def test_bad_labels_file_magic_names_the_labels_file():
    with pytest.raises(DataError, match=r"wrong_labels-labels-idx1-ubyte: magic: expected 0x00000801"):
        read_arrays(MALFORMED / "wrong_labels-images-idx3-ubyte")


def test_data_error_pickles():
    import pickle

    err = DataError("a.csv", 3, "bad")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == "a.csv:3: bad" and again.line == 3


# ----------------------------------------------------------------------------------------------- skip reports
def test_skip_reports_count_and_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"label,a,b\n1,2,3\n1,2\n2,300,1\n3,4,5\nx,1,1\n")
    with pytest.warns(DataWarning, match=r"skipped 3 bad row\(s\) \(lines 3, 4, 6\)") as record:
        chunk = read_arrays(path, on_bad_row="skip")
    assert chunk.y.tolist() == [1, 3] and chunk.x.tolist() == [[2, 3], [4, 5]]
    warning = record[0].message
    assert warning.n_skipped == 3 and warning.lines == (3, 4, 6)
    with pytest.warns(DataWarning, match="skipped 3"):
        assert sum(len(c) for c in read_chunks(path, on_bad_row="skip", chunk_rows=1)) == 2


def test_skip_idx_labels(tmp_path):
    with pytest.warns(DataWarning, match=r"skipped 1 bad row\(s\) \(lines item 1\)"):
        chunk = read_arrays(MALFORMED / "bad_label-images-idx3-ubyte", on_bad_row="skip")
    assert chunk.y.tolist() == [1, 3]


def test_clean_file_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_arrays(FIXTURES / "mnist_test_40.csv", on_bad_row="skip")


def test_bad_options():
    with pytest.raises(ValueError, match="on_bad_row"):
        read_arrays(FIXTURES / "mnist_test_40.csv", on_bad_row="ignore")
    with pytest.raises(ValueError, match="chunk_rows"):
        read_chunks(FIXTURES / "mnist_test_40.csv", chunk_rows=0)


# ------------------------------------------------------------------------------------------------------ cache
def test_cache_reloads_and_notices_changes(tmp_path):
    source = tmp_path / "d.csv"
    shutil.copy(FIXTURES / "mnist_test_40.csv", source)
    os.utime(source, ns=(10**18, 10**18))  # written seconds ago: a source modified within 2 s is not cached
    cache = tmp_path / "cache"
    first = read_arrays(source, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 2 and len(list(cache.glob("*.json"))) == 1
    again = read_arrays(source, cache_dir=cache)
    np.testing.assert_array_equal(again.x, first.x)
    assert not again.x.flags.writeable

    os.utime(source, ns=(1, 1))  # touched, same bytes: the SHA-256 says reuse
    np.testing.assert_array_equal(read_arrays(source, cache_dir=cache).y, first.y)

    source.write_bytes(source.read_bytes().replace(b"\r\n7,", b"\r\n3,", 1))  # same size, new content
    os.utime(source, ns=(2, 2))
    changed = read_arrays(source, cache_dir=cache)
    assert changed.y[0] == 3 and first.y[0] == 7
    assert len(list(cache.glob("*.npy"))) == 2  # the stale arrays were replaced, not kept


def test_cache_keeps_options_apart_and_replays_skip_warnings(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_bytes(b"1,2\n1\n3,4\n")
    cache = tmp_path / "cache"
    with pytest.warns(DataWarning):
        read_arrays(source, on_bad_row="skip", cache_dir=cache)
    with pytest.warns(DataWarning, match="skipped 1"):
        assert read_arrays(source, on_bad_row="skip", cache_dir=cache).y.tolist() == [1, 3]
    with pytest.raises(DataError):
        read_arrays(source, cache_dir=cache)
    with pytest.warns(DataWarning, match="skipped 1"):
        assert read_arrays(source, label_col=None, on_bad_row="skip", cache_dir=cache).x.tolist() == [[1, 2], [3, 4]]


def test_read_chunks_memory_is_bounded(tmp_path):
    """Streaming a file 4x larger than the allowance never holds it all: traced peak < 48 MB (limit 64) for ~29 MB."""
    import tracemalloc

    lines = (FIXTURES / "mnist_test_40.csv").read_bytes().split(b"\n", 1)
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.write(lines[0] + b"\n")
        for _ in range(400):
            f.write(lines[1])
    assert path.stat().st_size > 28e6
    tracemalloc.start()
    try:
        n = sum(len(c) for c in read_chunks(path, chunk_rows=4096))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 16000 and peak < 48e6, peak


# ------------------------------------------------------------------------------------------ parallel parsing
# Files of several blocks are parsed by worker threads ("fnn-parse-*"); these tests shrink BLOCK_BYTES so that
# small files span many blocks, and compare with workers=0 (every block parsed in the calling thread).
def _digits_csv(path: Path, n_rows: int, *, line_end: str = "\n", seed: int = 0):
    """An MNIST-like file (header, label, 100 pixels, ~20% ink, 1-3 digit fields) and its arrays."""
    rng = np.random.default_rng(seed)
    x = ((rng.random((n_rows, 100)) < 0.2) * rng.integers(0, 256, (n_rows, 100))).astype(np.uint8)
    y = rng.integers(0, 10, n_rows)
    return write_csv(path, x, y, line_end=line_end), x, y


def _parse(path: Path, *, workers: int, block_bytes: int, on_bad_row: str = "raise"):
    """_csv_parts concatenated: (x, y, bad rows' lines)."""
    bad = _BadRows(path, on_bad_row)
    parts = list(_csv_parts(path, header="auto", label_col=0, n_classes=10, bad=bad, block_bytes=block_bytes,
                            workers=workers))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), bad.lines


def _parse_threads() -> list:
    return [t for t in threading.enumerate() if t.name.startswith("fnn-parse")]


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz"])
def test_parallel_parse_equals_serial(tmp_path, monkeypatch, line_end, name):
    path, x, y = _digits_csv(tmp_path / name, 3000, line_end=line_end)
    block = 16 << 10
    assert len(gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()) > 20 * block
    for workers in (0, 1, 2, 3):
        got_x, got_y, _ = _parse(path, workers=workers, block_bytes=block)
        np.testing.assert_array_equal(got_x, x)
        np.testing.assert_array_equal(got_y, y)
    monkeypatch.setattr(sources, "BLOCK_BYTES", block)  # the public readers, with the default PARSE_WORKERS
    whole = read_arrays(path)
    np.testing.assert_array_equal(whole.x, x)
    np.testing.assert_array_equal(whole.y, y)
    chunks = list(read_chunks(path, chunk_rows=700))
    assert [len(c) for c in chunks] == [700] * 4 + [200]
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), y)


def test_default_blocks_use_the_threads_and_closing_early_stops_them(tmp_path):
    """A file of several BLOCK_BYTES blocks is parsed by worker threads; closing the stream half way joins them."""
    path, x, _ = _digits_csv(tmp_path / "big.csv", 12000)
    assert path.stat().st_size > 4 * BLOCK_BYTES
    before = threading.active_count()
    stream = read_chunks(path, chunk_rows=1000)
    first = [next(stream) for _ in range(3)]  # 3000 rows: past the first block, so the threads have started
    assert _parse_threads()
    stream.close()
    assert not _parse_threads() and threading.active_count() == before
    np.testing.assert_array_equal(np.concatenate([c.x for c in first]), x[:3000])


def test_threads_stop_when_the_consumer_raises(tmp_path):
    path, _, _ = _digits_csv(tmp_path / "big.csv", 12000)
    before = threading.active_count()
    with pytest.raises(ZeroDivisionError):
        for i, _ in enumerate(read_chunks(path, chunk_rows=500)):
            if i == 5:
                1 / 0
    assert not _parse_threads() and threading.active_count() == before


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_bad_rows_in_later_blocks_keep_their_lines(tmp_path, monkeypatch, workers, line_end):
    """Bad rows deep in the file: the same first line (raise) and the same skipped lines, rows and odd-but-valid
    fields (skip) whether blocks are parsed by threads or here. Row i is on line i + 2 (after the header)."""
    path, x, y = _digits_csv(tmp_path / "d.csv", 3000, line_end=line_end)
    lines = path.read_bytes().split(line_end.encode())
    bad_rows = [1700, 1701, 2400, 2999]
    for i in bad_rows:
        lines[i + 1] = lines[i + 1].replace(b",", b",x", 1) if i != 2400 else b"3,1,2"  # non-numeric, columns
    lines[900 + 1] = b" " + lines[900 + 1].replace(b",", b", ", 1)  # odd but valid: " 7, 0,..."
    lines[2000 + 1] = lines[2000 + 1].replace(b",", b"\t,", 1)  # "7\t,..."
    path.write_bytes(line_end.encode().join(lines))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 16 << 10)
    monkeypatch.setattr(csv_format, "PARSE_WORKERS", workers)
    before = threading.active_count()
    with pytest.raises(DataError, match=r"d\.csv:1702: column 2 \('1'\): non-numeric field 'x0'") as error:
        read_arrays(path)
    assert error.value.line == 1702 and threading.active_count() == before
    with pytest.warns(DataWarning, match=r"skipped 4 bad row\(s\) \(lines 1702, 1703, 2402, 3001\)") as record:
        chunk = read_arrays(path, on_bad_row="skip")
    assert record[0].message.lines == (1702, 1703, 2402, 3001)
    keep = np.setdiff1d(np.arange(3000), bad_rows)
    np.testing.assert_array_equal(chunk.x, x[keep])
    np.testing.assert_array_equal(chunk.y, y[keep])
    assert threading.active_count() == before


def test_truncated_gzip_of_many_blocks_names_the_same_line(tmp_path):
    path, _, _ = _digits_csv(tmp_path / "d.csv", 3000)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(path.read_bytes())[: path.stat().st_size // 8])
    messages = set()
    for workers in (0, 2):
        with pytest.raises(DataError, match="truncated gzip stream") as error:
            _parse(cut, workers=workers, block_bytes=16 << 10)
        messages.add(str(error.value))
    assert len(messages) == 1, messages


def test_worker_errors_reach_the_caller(tmp_path, monkeypatch):
    path, _, _ = _digits_csv(tmp_path / "d.csv", 3000)
    real = csv_format._fast_block

    def failing(data, spec):
        if threading.current_thread().name.startswith("fnn-parse"):
            raise MemoryError("worker failed")
        return real(data, spec)

    monkeypatch.setattr(csv_format, "_fast_block", failing)
    before = threading.active_count()
    with pytest.raises(MemoryError, match="worker failed"):
        _parse(path, workers=2, block_bytes=16 << 10)
    assert threading.active_count() == before
    assert len(_parse(path, workers=0, block_bytes=16 << 10)[1]) == 3000


@pytest.mark.parametrize("name", ["mnist_test_40.csv", "mnist_test_40.csv.gz"])
def test_fixtures_in_tiny_blocks(monkeypatch, name):
    """The real fixture rows (CRLF, lines of ~2 kB) cut into 1 kB blocks: many blocks, no line in one piece."""
    whole = read_arrays(FIXTURES / name)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 1024)
    small = read_arrays(FIXTURES / name)
    np.testing.assert_array_equal(small.x, whole.x)
    np.testing.assert_array_equal(small.y, whole.y)


@pytest.mark.parametrize("name, options, expected", [c for c in CORPUS if ".csv" in c[0]],
                         ids=[c[0] for c in CORPUS if ".csv" in c[0]])
def test_malformed_corpus_in_tiny_blocks(monkeypatch, name, options, expected):
    """The same messages (line numbers included) when every CSV in the corpus spans several 8-byte blocks."""
    monkeypatch.setattr(sources, "BLOCK_BYTES", 8)
    path = MALFORMED / name
    with pytest.raises(DataError) as info:
        read_arrays(path, **options)
    assert str(info.value).startswith(f"{path}{expected}"), str(info.value)


@settings(max_examples=25, deadline=None)
@given(data=labelled_images(max_rows=60), block=st.integers(8, 300), crlf=st.booleans(),
       bad=st.lists(st.integers(1, 59), max_size=6))
def test_threads_and_serial_skip_the_same_rows(data, block, crlf, bad):
    """Any block size, bad rows anywhere after the first (which sets the column count): same rows, same lines."""
    x, y = data
    end = "\r\n" if crlf else "\n"
    bad = sorted({i for i in bad if i < len(y)})
    rows = [",".join(map(str, [label, *row])) + (",1" if i in bad else "")  # one column too many
            for i, (label, row) in enumerate(zip(y.tolist(), x.tolist()))]
    path = Path(tempfile.mkdtemp()) / "t.csv"
    try:
        path.write_text("".join(row + end for row in rows), newline="")
        serial = _parse(path, workers=0, block_bytes=block, on_bad_row="skip")
        threaded = _parse(path, workers=2, block_bytes=block, on_bad_row="skip")
    finally:
        shutil.rmtree(path.parent)
    keep = np.setdiff1d(np.arange(len(y)), bad)
    for got in (serial, threaded):
        np.testing.assert_array_equal(got[0], x[keep])
        np.testing.assert_array_equal(got[1], y[keep])
        assert got[2] == [i + 1 for i in bad]
