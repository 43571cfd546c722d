"""The scikit-learn estimator (issue 13, item 2): scikit-learn's own estimator checks, GridSearchCV, a Pipeline,
string labels and sample counts that are not a multiple of the batch."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="needs the sklearn extra: pip install 'functional-nn[sklearn]'")

from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from functional_nn.app.estimator import MLPClassifier  # noqa: E402

# Checks skipped, with the reason (none so far: every check of scikit-learn's suite runs).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([MLPClassifier(hidden_layer_sizes=(8,), max_iter=100, learning_rate_init=0.01,
                                        random_state=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    with np.errstate(all="ignore"):
        check(estimator)


def blobs(n=103, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 4]], float)
    y = rng.integers(0, 3, n)
    return centers[y] + rng.standard_normal((n, 4)), np.array(["cat", "dog", "eel"])[y]


def test_string_labels_and_an_odd_sample_count():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=40, batch_size=32, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["cat", "dog", "eel"] and clf.n_features_in_ == 4
    assert clf.score(X, y) > 0.9 and set(clf.predict(X)) <= {"cat", "dog", "eel"}
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.t_ == 103 * clf.n_iter_
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1, rtol=1e-6)


def test_fit_is_deterministic_with_a_random_state_and_early_stopping_keeps_the_best():
    X, y = blobs(200)
    a = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=3, early_stopping=True).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=3, early_stopping=True).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert len(a.validation_scores_) == a.n_iter_ and a.best_validation_score_ == max(a.validation_scores_)


def test_partial_fit_needs_classes_first_then_learns():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for _ in range(30):
        clf.partial_fit(X, y, classes=["cat", "dog", "eel"])
    assert clf.n_iter_ == 30 and clf.score(X, y) > 0.9


def test_grid_search_over_two_settings_and_a_pipeline():
    X, y = blobs(150)
    search = GridSearchCV(MLPClassifier(max_iter=15, random_state=0),
                          {"hidden_layer_sizes": [(4,), (16,)], "learning_rate_init": [1e-3, 1e-2]}, cv=3)
    search.fit(X, y)
    assert set(search.best_params_) == {"hidden_layer_sizes", "learning_rate_init"}
    assert len(search.cv_results_["mean_test_score"]) == 4 and search.best_score_ > 0.8
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.01,
                                                         random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
