"""class_scores against scikit-learn's precision_recall_fscore_support (issue 13, item 5)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from functional_nn import class_scores

metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the reference here (the sklearn extra)")


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(st.just(k), st.integers(1, 60))).flatmap(
    lambda kn: st.tuples(st.just(kn[0]), arrays(np.int64, kn[1], elements=st.integers(0, kn[0] - 1)),
                         arrays(np.int64, kn[1], elements=st.integers(0, kn[0] - 1)))))
def test_scores_match_scikit_learn(case):
    k, y_true, y_pred = case
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    s = class_scores(confusion)
    labels = list(range(k))
    p, r, f, support = metrics.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    np.testing.assert_allclose(s.precision, p)
    np.testing.assert_allclose(s.recall, r)
    np.testing.assert_allclose(s.f1, f)
    np.testing.assert_array_equal(s.support, support)
    for avg, got in (("macro", s.macro), ("weighted", s.weighted)):
        p, r, f, _ = metrics.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                             zero_division=0)
        assert got["precision"] == pytest.approx(p) and got["recall"] == pytest.approx(r)
        assert got["f1"] == pytest.approx(f) and got["support"] == len(y_true)


def test_scores_are_read_only():
    s = class_scores(np.eye(3, dtype=np.int64))
    assert s.precision.tolist() == [1.0, 1.0, 1.0] and not s.f1.flags.writeable
