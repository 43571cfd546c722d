"""Stages: shuffle permutes (seeded per epoch), batch keeps every row in order, scale, take/skip, split."""

import numpy as np
import pytest
from tests.strategies import chunk_streams
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipelines import Chunk, batch, concat_chunks, epoch_seed_rng, from_arrays, scale, shuffle, skip, take
from pipelines import standardize, train_val_split
from pipelines.stages import PIECE_BYTES
from pipelines.stats import fit_standardizer


def rows(chunks):
    return [c.y.tolist() for c in chunks]


def flat_y(chunks):
    chunks = list(chunks)
    return np.concatenate([c.y for c in chunks]).tolist() if chunks else []


@settings(max_examples=40, deadline=None)
@given(chunks=chunk_streams(), seed=st.integers(0, 2**32 - 1), buffer_rows=st.integers(1, 50))
def test_shuffle_is_a_permutation(chunks, seed, buffer_rows):
    out = list(shuffle(iter(chunks), np.random.default_rng(seed), buffer_rows=buffer_rows))
    n = sum(len(c) for c in chunks)
    assert sorted(flat_y(out)) == list(range(n))
    if n:
        x_in = concat_chunks(chunks).x
        x_out = concat_chunks(out).x
        np.testing.assert_array_equal(x_out, x_in[concat_chunks(out).y])  # rows travel with their labels


@settings(max_examples=20, deadline=None)
@given(chunks=chunk_streams(), seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 100))
def test_shuffle_is_deterministic_per_seed_and_epoch(chunks, seed, epoch):
    a = flat_y(shuffle(iter(chunks), epoch_seed_rng(seed, epoch), buffer_rows=16))
    b = flat_y(shuffle(iter(chunks), epoch_seed_rng(seed, epoch), buffer_rows=16))
    assert a == b


def test_epochs_differ_and_replay():
    x, y = np.zeros((100, 1), np.float32), np.arange(100)
    orders = [flat_y(shuffle(from_arrays(x, y), epoch_seed_rng(42, e))) for e in range(3)]
    assert orders[0] != orders[1] != orders[2]
    assert orders[2] == flat_y(shuffle(from_arrays(x, y), np.random.default_rng([42, 2])))


def test_in_memory_shuffle_is_one_exact_full_permutation():
    y = np.arange(1000)
    out = list(shuffle(from_arrays(np.zeros((1000, 1)), y), np.random.default_rng(0), buffer_rows=64))
    assert sum(len(c) for c in out) == 1000 and sorted(flat_y(out)) == y.tolist()
    # larger than the buffer, still a uniform permutation of the whole chunk: rows from the end come out early
    assert max(flat_y(out)[:500]) > 900


def test_stream_shuffle_mixes_across_chunks():
    chunks = [Chunk(np.zeros((10, 1)), np.arange(i, i + 10)) for i in range(0, 100, 10)]
    out = flat_y(shuffle(iter(chunks), np.random.default_rng(1), buffer_rows=30))
    assert sorted(out) == list(range(100)) and out != list(range(100))
    assert max(out[:10]) < 40  # bounded buffer: the first rows out come from the first chunks


def test_shuffle_does_not_write_into_its_input():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    chunks = [Chunk(x[:5].copy(), y[:5].copy()), Chunk(x[5:].copy(), y[5:].copy())]
    list(shuffle(iter(chunks), np.random.default_rng(0), buffer_rows=4))
    np.testing.assert_array_equal(chunks[0].x, x[:5])
    np.testing.assert_array_equal(chunks[1].y, y[5:])


@settings(max_examples=40, deadline=None)
@given(chunks=chunk_streams(), batch_size=st.integers(1, 25), drop=st.booleans())
def test_batch_loses_no_row_and_keeps_order(chunks, batch_size, drop):
    out = list(batch(iter(chunks), batch_size=batch_size, drop_remainder=drop))
    n = sum(len(c) for c in chunks)
    got = flat_y(out)
    if drop:
        assert got == list(range(n - n % batch_size))
        assert all(len(c) == batch_size for c in out)
    else:
        assert got == list(range(n))
        assert all(len(c) == batch_size for c in out[:-1])
        assert not out or 0 < len(out[-1]) <= batch_size


@pytest.mark.parametrize("size", [0, -3])
def test_batch_size_must_be_positive(size):
    with pytest.raises(ValueError, match="batch_size"):
        batch([], batch_size=size)


@settings(max_examples=25, deadline=None)
@given(chunks=chunk_streams(), n=st.integers(0, 60))
def test_take_and_skip_split_the_stream(chunks, n):
    total = sum(len(c) for c in chunks)
    assert flat_y(take(iter(chunks), n)) == list(range(min(n, total)))
    assert flat_y(skip(iter(chunks), n)) == list(range(min(n, total), total))


@settings(max_examples=25, deadline=None)
@given(x=st.integers(1, 20).flatmap(lambda n: st.lists(st.integers(0, 255), min_size=n, max_size=n)))
def test_scale_gives_float32_in_unit_interval(x):
    x = np.array([x], dtype=np.uint8)
    (out,) = scale(from_arrays(x))
    assert out.x.dtype == np.float32 and out.x.min() >= 0 and out.x.max() <= 1
    np.testing.assert_allclose(out.x * 255, x, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 5), seed=st.integers(0, 10**6),
       fraction=st.floats(0, 1), stratify=st.booleans())
def test_train_val_split_is_disjoint_and_covers(n, k, seed, fraction, stratify):
    y = np.random.default_rng(seed).integers(0, k, n)
    data = Chunk(np.arange(n, dtype=np.float32)[:, None], y)
    train, val = train_val_split(data, seed=seed, fraction=fraction, stratify=stratify)
    ids_train, ids_val = train.x[:, 0].astype(int).tolist(), val.x[:, 0].astype(int).tolist()
    assert not set(ids_train) & set(ids_val)
    assert sorted(ids_train + ids_val) == list(range(n))
    assert ids_train == sorted(ids_train) and ids_val == sorted(ids_val)
    np.testing.assert_array_equal(val.y, y[ids_val])
    if stratify:
        for label in range(k):
            assert (val.y == label).sum() == round(fraction * (y == label).sum())
    else:
        assert len(val) == round(fraction * n)
    again = train_val_split(data, seed=seed, fraction=fraction, stratify=stratify)[1]
    np.testing.assert_array_equal(again.x, val.x)


def test_split_fraction_is_checked():
    with pytest.raises(ValueError, match="fraction"):
        train_val_split(Chunk(np.zeros((2, 1)), np.arange(2)), seed=0, fraction=1.5)


def test_stages_keep_unlabelled_streams():
    x = np.arange(12, dtype=np.uint8).reshape(6, 2)
    out = list(batch(shuffle(scale(from_arrays(x)), np.random.default_rng(0)), batch_size=4))
    assert [len(c) for c in out] == [4, 2] and all(c.y is None for c in out)


def test_stages_are_lazy():
    def source():
        yield Chunk(np.zeros((2, 1)), np.arange(2))
        raise AssertionError("read too far")

    assert flat_y(take(source(), 2)) == [0, 1]


def test_in_memory_shuffle_comes_in_pieces_of_one_exact_gather():
    """The permuted rows come out a piece at a time (a power of two rows, about PIECE_BYTES of x), never as a second
    copy of the whole data set, and together they are exactly ``x[permutation]`` of the same generator."""
    x = np.arange(3000 * 1000, dtype=np.float64).reshape(3000, 1000)  # 8000 bytes per row: 128-row pieces
    y = np.arange(3000)
    pieces = list(shuffle(from_arrays(x, y), np.random.default_rng(5)))
    order = np.random.default_rng(5).permutation(3000)
    assert [len(p) for p in pieces] == [128] * 23 + [3000 - 23 * 128]
    assert max(p.x.nbytes for p in pieces) <= PIECE_BYTES
    np.testing.assert_array_equal(concat_chunks(pieces).x, x[order])
    np.testing.assert_array_equal(concat_chunks(pieces).y, y[order])


@settings(max_examples=40, deadline=None)
@given(x=arrays(st.sampled_from([np.uint8, np.int64, np.float64]), st.tuples(st.integers(1, 5), st.integers(1, 6)),
                elements=st.integers(0, 255)),
       max_value=st.sampled_from([255.0, 1.0, 7.5]))
def test_scale_is_bitwise_astype_then_divide(x, max_value):
    out = concat_chunks(scale(from_arrays(x), max_value=max_value)).x
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32) / np.float32(max_value))


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.uint8, st.tuples(st.integers(2, 6), st.integers(1, 5))))
def test_standardize_is_bitwise_the_textbook_formula(x):
    stats = fit_standardizer(Chunk(x))
    out = concat_chunks(standardize(from_arrays(x), stats)).x
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (x.astype(np.float32) - stats.mean) / stats.std)
