"""A differential fuzzer over the CSV and IDX readers (issue 11's fault-injection suite).

Hypothesis writes files from tokens chosen to sit on the readers' edges (digits with leading zeros, 255/256,
signs, points, underscores, other scripts' digits, blanks, every line end, byte-order marks, headers, IDX types,
sizes and lengths that disagree) and from raw bytes. Each file is read by the real reader and by ``reference_*``
below, a plain Python reader of the documented rules, written for clarity and not speed:

- any exception other than ``DataError`` fails;
- the real reader must refuse exactly what the reference refuses, and return exactly the reference's arrays;
- hypothesis' deadline fails an example that takes too long (the quadratic cases of the fault campaign).

The default run is small (CI); ``pytest -m fuzz`` runs thousands of examples per reader.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import DataError, read_arrays

N_CLASSES = 10
CI = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
LONG = settings(max_examples=3000, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


class Refused(Exception):
    """The reference reader refuses the input."""


# ------------------------------------------------------------------------------------------------ CSV

def _is_float(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def reference_csv(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Label in column 0, header auto-detected (a first line with a field that is not a number)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = [line for line in text.split(b"\n") if line.strip()]
    if not lines:
        raise Refused("no rows")
    first = [f.strip() for f in lines[0].split(b",")]
    n_cols = len(first)
    if not all(_is_float(f) for f in first):
        lines = lines[1:]
    if not lines:
        raise Refused("header only")
    rows = []
    for line in lines:
        fields = [f.strip() for f in line.split(b",")]
        if len(fields) != n_cols:
            raise Refused("columns")
        values = []
        for f in fields:
            if not (f.isdigit() or (f[:1] == b"-" and f[1:].isdigit())):
                raise Refused("not digits")
            values.append(int(f))
        if not 0 <= values[0] < N_CLASSES or any(not 0 <= v <= 255 for v in values[1:]):
            raise Refused("range")
        rows.append(values)
    a = np.array(rows, dtype=np.int64)
    return a[:, 1:].astype(np.uint8), a[:, 0]


TOKENS = [b"0", b"7", b"9", b"10", b"007", b"255", b"0255", b"256", b"1000", b"", b" 7", b"7\t", b"2_5", b"+3",
          b"-1", b"-0", b"5.0", b"1e2", b"nan", b"inf", b"0x1", "\u0663".encode(), b"a", b"\xff", b'"3"', b"3 4"]
LINE_ENDS = [b"\n", b"\r\n", b"\r", b"\r\r\n"]


@st.composite
def csv_files(draw) -> bytes:
    n_cols = draw(st.integers(1, 5))
    plain = st.integers(0, 255).map(lambda v: b"%d" % v)
    label = st.integers(0, 9).map(lambda v: b"%d" % v)
    odd = st.sampled_from(TOKENS)
    out = [b"\xef\xbb\xbf"] if draw(st.integers(0, 9)) == 0 else []
    if draw(st.booleans()):
        out.append(b",".join([b"label"] + [b"p%d" % j for j in range(1, n_cols)]) + draw(st.sampled_from(LINE_ENDS)))
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from([b"", b" ", b"\t", b" \t "])))
        else:
            cols = draw(st.integers(n_cols - 1, n_cols + 1)) if draw(st.integers(0, 19)) == 0 else n_cols
            fields = [draw(label | odd if draw(st.integers(0, 9)) == 0 else label)] + [
                draw(odd if draw(st.integers(0, 14)) == 0 else plain) for _ in range(max(cols - 1, 0))]
            out.append(b",".join(fields))
        out.append(draw(st.sampled_from(LINE_ENDS)))
    if out and draw(st.booleans()):
        out.pop()                                  # no final line end
    if draw(st.integers(0, 19)) == 0:
        out.append(draw(st.sampled_from(LINE_ENDS)) * draw(st.integers(1, 50_000)))   # long runs of line ends
    return b"".join(out)


def agree(path, reference, what: str) -> None:
    """``read_arrays(path)`` refuses (DataError, nothing else) exactly what ``reference()`` refuses, and reads the
    same arrays otherwise."""
    try:
        expected = reference()
    except Refused:
        expected = None
    try:
        got = read_arrays(path)
    except DataError:
        assert expected is None, f"refused what the reference reads: {what}"
        return
    assert expected is not None, f"read what the reference refuses: {what}"
    np.testing.assert_array_equal(got.x, expected[0])
    np.testing.assert_array_equal(got.y, expected[1])
    assert got.x.dtype == np.uint8 and got.y.dtype == np.int64


def check_csv(tmp_path, data: bytes, gz: bool) -> None:
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    agree(path, lambda: reference_csv(data), f"{data[:200]!r}")


def _csv_case(tmp_path_factory, data, gz):
    check_csv(tmp_path_factory.mktemp("csv"), data, gz)


@CI
@given(data=csv_files(), gz=st.booleans())
def test_csv_reader_agrees_with_the_reference(tmp_path_factory, data, gz):
    _csv_case(tmp_path_factory, data, gz)


@CI
@given(data=st.binary(max_size=300))
def test_csv_reader_on_raw_bytes_raises_only_data_error(tmp_path_factory, data):
    _csv_case(tmp_path_factory, data, False)


@pytest.mark.fuzz
@LONG
@given(data=csv_files(), gz=st.booleans())
def test_csv_reader_agrees_with_the_reference_long(tmp_path_factory, data, gz):
    _csv_case(tmp_path_factory, data, gz)


@pytest.mark.fuzz
@LONG
@given(data=st.binary(max_size=2000))
def test_csv_reader_on_raw_bytes_long(tmp_path_factory, data):
    _csv_case(tmp_path_factory, data, False)


# ------------------------------------------------------------------------------------------------ IDX

def reference_idx(images: bytes, labels: bytes) -> tuple[np.ndarray, np.ndarray]:
    def parse(data: bytes, ndim_ok) -> tuple[tuple[int, ...], bytes]:
        if len(data) < 4 or data[:3] != b"\0\0\x08" or not ndim_ok(data[3]):
            raise Refused("magic or type")
        ndim = data[3]
        if len(data) < 4 + 4 * ndim:
            raise Refused("dims")
        dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
        size = 1
        for d in dims:
            size *= d
        if 0 in dims or size > 1 << 40 or len(data) - 4 - 4 * ndim != size:
            raise Refused("sizes")
        return dims, data[4 + 4 * ndim:]
    dims, pixels = parse(images, lambda n: n >= 2)
    ldims, raw_labels = parse(labels, lambda n: n == 1)
    if ldims[0] != dims[0]:
        raise Refused("count")
    y = np.frombuffer(raw_labels, np.uint8).astype(np.int64)
    if (y >= N_CLASSES).any():
        raise Refused("label")
    return np.frombuffer(pixels, np.uint8).reshape(dims[0], -1), y


@st.composite
def idx_pairs(draw) -> tuple[bytes, bytes]:
    n = draw(st.integers(0, 6))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    code = draw(st.sampled_from([0x08] * 6 + [0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]))
    lcode = draw(st.sampled_from([0x08] * 8 + [0x0D, 0x0C]))
    row = int(np.prod(shape))
    pixels = draw(st.binary(min_size=n * row, max_size=n * row))
    labels = bytes(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)))
    delta = draw(st.sampled_from([0] * 8 + [-1, 1, 3]))
    images = bytes([0, 0, code, 1 + len(shape)]) + np.asarray([n, *shape], ">u4").tobytes() + pixels
    lab = bytes([0, 0, lcode, 1]) + np.asarray([n + draw(st.sampled_from([0] * 8 + [1]))], ">u4").tobytes() + labels
    if delta > 0:
        images += bytes(delta)
    elif delta < 0:
        images = images[:delta]
    if draw(st.integers(0, 9)) == 0:
        images = draw(st.binary(max_size=40))       # anything at all
    return images, lab


def check_idx(tmp_path, images: bytes, labels: bytes, gz: bool) -> None:
    suffix = ".gz" if gz else ""
    ip, lp = tmp_path / f"f-images-idx3-ubyte{suffix}", tmp_path / f"f-labels-idx1-ubyte{suffix}"
    ip.write_bytes(gzip.compress(images) if gz else images)
    lp.write_bytes(gzip.compress(labels) if gz else labels)
    agree(ip, lambda: reference_idx(images, labels), f"{images[:80]!r} {labels[:40]!r}")


@CI
@given(pair=idx_pairs(), gz=st.booleans())
def test_idx_reader_agrees_with_the_reference(tmp_path_factory, pair, gz):
    check_idx(tmp_path_factory.mktemp("idx"), *pair, gz)


@pytest.mark.fuzz
@LONG
@given(pair=idx_pairs(), gz=st.booleans())
def test_idx_reader_agrees_with_the_reference_long(tmp_path_factory, pair, gz):
    check_idx(tmp_path_factory.mktemp("idx"), *pair, gz)
