"""A scikit-learn estimator over the pure core: ``MLPClassifier`` (needs the ``sklearn`` extra).

The name and the parameter names are scikit-learn's own ``sklearn.neural_network.MLPClassifier``'s, so that a
user can swap one for the other in a ``Pipeline``, ``GridSearchCV`` or ``cross_val_score`` without renaming
anything; what differs is said below. It is a thin stateful shell: every computation is the core's
(``init_mlp``, ``make_train_step``, the optimizers, the lazy loop ``fit`` / ``take_epochs`` / ``with_validation``
/ ``track_best``), and the only state is the fitted attributes scikit-learn users expect:
``classes_``, ``n_features_in_``, ``loss_curve_``, ``validation_scores_``, ``best_validation_score_``,
``n_iter_``, ``t_``, ``coefs_`` and ``intercepts_`` (read-only copies of the weights).

Differences from scikit-learn's: ``solver`` also takes ``momentum``, ``nesterov``, ``adamw`` and ``rmsprop``
(``lbfgs`` is not offered); ``dropout`` is added; the arithmetic runs in float32 (``dtype``); ``batch_size``
"auto" is min(200, n_samples) as there. Features are used as given: scale them (``StandardScaler`` or pixels
/ 255) as for scikit-learn's.

    >>> from sklearn.datasets import load_digits                             # doctest: +SKIP
    >>> X, y = load_digits(return_X_y=True)                                  # doctest: +SKIP
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0)  # doctest: +SKIP
    >>> clf.fit(X / 16, y).score(X / 16, y)                                  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

import functional_nn as fnn

SOLVERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "logistic")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron classifier trained by this project's pure NumPy core (see the module docstring).

    Parameters (scikit-learn's names and meanings): ``hidden_layer_sizes``, ``activation`` (relu, leaky_relu,
    tanh, logistic), ``solver``, ``alpha`` (L2 penalty), ``batch_size`` ("auto" or an int),
    ``learning_rate_init``, ``max_iter`` (epochs), ``shuffle``, ``random_state``, ``tol``, ``early_stopping``,
    ``validation_fraction``, ``n_iter_no_change``, ``momentum``, ``beta_1``, ``beta_2``; and ``dropout``,
    ``weight_decay`` (AdamW) and ``dtype``.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, momentum=0.9,
                 beta_1=0.9, beta_2=0.999, dropout=0.0, weight_decay=0.0, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.dtype = dtype

    # -------------------------------------------------------------------------------------------- checks

    def _validate_params(self) -> None:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.batch_size != "auto" and not (isinstance(self.batch_size, (int, np.integer))
                                              and self.batch_size >= 1):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {self.batch_size!r}")
        for name, low, high in (("learning_rate_init", 0, None), ("alpha", 0, None), ("tol", 0, None),
                                ("validation_fraction", 0, 1), ("momentum", 0, 1), ("beta_1", 0, 1),
                                ("beta_2", 0, 1), ("dropout", 0, 1), ("weight_decay", 0, None)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and value >= low
                    and (high is None or value < high)) or (name == "learning_rate_init" and value <= 0):
                raise ValueError(f"{name} must be a finite number in [{low}, {high or 'inf'}), got {value!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.early_stopping and self.validation_fraction <= 0:
            raise ValueError("early_stopping needs validation_fraction > 0")

    def _optimizer(self):
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            return fnn.sgd(lr)
        if self.solver in ("momentum", "nesterov"):
            return fnn.momentum(lr, beta=self.momentum, nesterov=self.solver == "nesterov")
        if self.solver == "adam":
            return fnn.adam(lr, b1=self.beta_1, b2=self.beta_2)
        if self.solver == "adamw":
            return fnn.adamw(lr, b1=self.beta_1, b2=self.beta_2, weight_decay=self.weight_decay)
        return fnn.rmsprop(lr)

    # ------------------------------------------------------------------------------------------ training

    def _start(self, X, y, classes) -> None:
        """Fresh fitted state: classes, seed, parameters and optimizer state."""
        self._validate_params()
        self.classes_ = np.asarray(classes)
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes, got 1 class: {self.classes_!r}")
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        activation = "sigmoid" if self.activation == "logistic" else self.activation
        init = "he" if activation in ("relu", "leaky_relu") else "glorot"
        layers = [X.shape[1], *map(int, sizes), len(self.classes_)]
        params = fnn.init_mlp(np.random.default_rng(self._seed), layers, activation=activation, init=init,
                              dtype=np.dtype(self.dtype))
        self._state = fnn.initial_state(params, self._optimizer().init(params))
        self.loss_curve_, self.validation_scores_ = [], [] if self.early_stopping else None
        self.best_validation_score_ = None
        self.n_iter_, self.t_ = 0, 0

    def _encode(self, y) -> np.ndarray:
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[index], y):
            unseen = sorted(set(np.asarray(y).tolist()) - set(self.classes_.tolist()))
            raise ValueError(f"y holds labels not in classes_: {unseen[:5]}")
        return index.astype(np.int64)

    def _batches(self, x, y, epoch: int):
        n = len(x)
        size = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        order = (np.random.default_rng([self._seed, epoch]).permutation(n) if self.shuffle else np.arange(n))
        return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, n, size)]

    def _epochs(self, x, y, epochs: int, val=None):
        """Train ``epochs`` epochs with the core's lazy loop; record the curves; stop on no improvement."""
        step = fnn.make_train_step(self._optimizer(), l2=float(self.alpha), dropout=float(self.dropout))
        seed = self._seed
        states = fnn.fit(step, self._state, lambda epoch: self._batches(x, y, epoch),
                         batch_rng=(lambda e, i: np.random.default_rng([seed, e, i, 1])) if self.dropout else None)
        if val is not None:
            states = fnn.track_best(fnn.with_validation(states, batches=[val], n_classes=len(self.classes_)),
                                    monitor="val_accuracy", mode="max")
        best, bad = np.inf if val is None else -np.inf, 0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for state in fnn.take_epochs(epochs, states):
                self._state = state
                self.n_iter_ += 1
                self.t_ += len(x)                            # samples seen, as scikit-learn counts
                loss = state.metrics.loss_sum / state.metrics.rows
                self.loss_curve_.append(float(loss))
                if val is not None:
                    score = state.metrics.value("val_accuracy")
                    self.validation_scores_.append(score)
                    improved = score > best + self.tol
                    best = max(best, score)
                else:
                    improved = loss < best - self.tol
                    best = min(best, loss)
                bad = 0 if improved else bad + 1
                if bad >= self.n_iter_no_change:
                    break
        if val is not None and self._state.best is not None:
            self.best_validation_score_ = float(self._state.best.value)
            self._state = fnn.initial_state(self._state.best.params, self._state.opt_state)
        self._publish()

    def _publish(self) -> None:
        params = self._state.params
        self.coefs_ = [np.asarray(p.w) for p in params]
        self.intercepts_ = [np.asarray(p.b) for p in params]

    def _xy(self, X, y, *, reset: bool):
        X, y = validate_data(self, X, y, reset=reset, dtype=[np.float64, np.float32], y_numeric=False)
        check_classification_targets(y)
        return np.asarray(X, dtype=self.dtype), y

    def fit(self, X, y):
        """Train from scratch for up to ``max_iter`` epochs (early stopping on a validation split if asked)."""
        X, y = self._xy(X, y, reset=True)
        self._start(X, y, unique_labels(y))
        y_index = self._encode(y)
        val = None
        if self.early_stopping:
            rng = np.random.default_rng([self._seed, 0, 7])
            order = rng.permutation(len(X))
            n_val = max(1, int(round(self.validation_fraction * len(X))))
            if n_val >= len(X):
                raise ValueError(f"validation_fraction {self.validation_fraction} leaves no training samples")
            val = (X[order[:n_val]], y_index[order[:n_val]])
            X, y_index = X[order[n_val:]], y_index[order[n_val:]]
        self._epochs(X, y_index, int(self.max_iter), val)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X, y``; the first call needs ``classes`` (all the labels that will ever be seen)."""
        first = not hasattr(self, "classes_")
        X, y = self._xy(X, y, reset=first)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self._start(X, y, unique_labels(classes))
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes {classes!r} differ from those of the first call {self.classes_!r}")
        n_iter_no_change, self.n_iter_no_change = self.n_iter_no_change, np.inf
        try:
            self._epochs(X, self._encode(y), 1)
        finally:
            self.n_iter_no_change = n_iter_no_change
        return self

    # ------------------------------------------------------------------------------------------ inference

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        params64 = tuple(fnn.Dense(np.asarray(p.w, np.float64), np.asarray(p.b, np.float64), p.activation)
                         if hasattr(p, "activation") else p for p in self._state.params)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return fnn.predict_proba(params64, np.asarray(X, np.float64))

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample (labels from ``classes_``)."""
        check_is_fitted(self, "coefs_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags
