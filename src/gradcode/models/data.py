"""Datasets for coded training: seeded synthetic data, scikit-learn's bundled sets,
LIBSVM/svmlight files, and deterministic partitioning into k parts.

Every function returns ``(X, y)`` with ``X`` a float64 numpy array or ``scipy.sparse``
CSR matrix (samples x features) and ``y`` a 1-d numpy array.

Example:
    >>> import gradcode as gc
    >>> X, y = gc.data.synthetic_classification(200, 5, seed=0)
    >>> parts = gc.data.partition(200, 4, seed=0)
    >>> [len(p) for p in parts]
    [50, 50, 50, 50]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.validate import MAX_ENTRIES, as_rng, check_int, check_real

__all__ = [
    "as_features",
    "load_svmlight",
    "partition",
    "sklearn_dataset",
    "synthetic_classification",
    "synthetic_multiclass",
    "synthetic_regression",
    "train_test_split",
]


def as_features(where: str, X: Any, y: Any | None = None) -> tuple[Any, np.ndarray | None]:
    """Validate a feature matrix (dense or scipy.sparse, 2-d, finite) and labels."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        data = X.data
    else:
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: X must be a numeric 2-d array or scipy.sparse matrix, "
                            f"got {type(X).__name__}") from None
        data = X
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{where}: X must be 2-d (samples x features) and non-empty, got "
                         f"shape {X.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{where}: X must be finite (found NaN or inf)")
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{where}: y must be 1-d with one label per row of X "
                         f"({X.shape[0]}), got shape {y.shape}")
    if y.dtype.kind not in "biuf" or not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError(f"{where}: y must hold finite numbers, got dtype {y.dtype}")
    return X, y


def synthetic_classification(n_samples: int, dim: int, seed: Any = 0, *, noise: float = 0.1,
                             density: float | None = None) -> tuple[Any, np.ndarray]:
    """Binary labels in {0, 1} from a random linear model: y = 1[x^T w* + noise > 0].

    x ~ N(0, I_dim) (or sparse with the given ``density``), w* ~ N(0, I / dim).

    Args:
        n_samples, dim: shape of X.
        seed: int or numpy Generator.
        noise: standard deviation of the Gaussian noise added to the margin.
        density: fraction of non-zero features; a scipy.sparse CSR X is returned when set.
    """
    n_samples = check_int("synthetic_classification", "n_samples", n_samples, low=1)
    dim = check_int("synthetic_classification", "dim", dim, low=1)
    noise = check_real("synthetic_classification", "noise", noise, low=0.0)
    rng = as_rng("synthetic_classification", seed)
    w = rng.standard_normal(dim) / np.sqrt(dim)
    if density is None:
        X = rng.standard_normal((n_samples, dim))
    else:
        density = check_real("synthetic_classification", "density", density, low=0.0,
                             high=1.0, low_open=True)
        X = sp.random(n_samples, dim, density=density, format="csr", random_state=rng,
                      data_rvs=rng.standard_normal)
        X = sp.csr_matrix(X / np.sqrt(density))
    margin = X @ w + noise * rng.standard_normal(n_samples)
    return X, (margin > 0).astype(np.float64)


def synthetic_regression(n_samples: int, dim: int, seed: Any = 0, *,
                         noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """y = X w* + noise, X ~ N(0, I), w* ~ N(0, I)."""
    n_samples = check_int("synthetic_regression", "n_samples", n_samples, low=1)
    dim = check_int("synthetic_regression", "dim", dim, low=1)
    noise = check_real("synthetic_regression", "noise", noise, low=0.0)
    rng = as_rng("synthetic_regression", seed)
    X = rng.standard_normal((n_samples, dim))
    w = rng.standard_normal(dim)
    return X, X @ w + noise * rng.standard_normal(n_samples)


def synthetic_multiclass(n_samples: int, dim: int, classes: int = 3, seed: Any = 0, *,
                         separation: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: class c centred at separation * mu_c, mu_c ~ N(0, I / dim) * sqrt(dim)."""
    n_samples = check_int("synthetic_multiclass", "n_samples", n_samples, low=1)
    dim = check_int("synthetic_multiclass", "dim", dim, low=1)
    classes = check_int("synthetic_multiclass", "classes", classes, low=2)
    rng = as_rng("synthetic_multiclass", seed)
    centres = separation * rng.standard_normal((classes, dim))
    y = rng.integers(0, classes, n_samples)
    return centres[y] + rng.standard_normal((n_samples, dim)), y.astype(np.int64)


_SKLEARN = {
    "iris": "load_iris", "digits": "load_digits", "wine": "load_wine",
    "breast_cancer": "load_breast_cancer", "diabetes": "load_diabetes",
}


def sklearn_dataset(name: str, *, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One of scikit-learn's bundled datasets (no download): iris, digits, wine,
    breast_cancer, diabetes. Features are standardised (zero mean, unit variance) unless
    ``standardize=False``.

    Raises:
        ValueError: unknown name (the valid ones are listed).
        ImportError: scikit-learn is not installed (``pip install gradcode[data]``).
    """
    if name not in _SKLEARN:
        raise ValueError(f"sklearn_dataset: name={name!r} is not a bundled dataset; valid: "
                         f"{', '.join(sorted(_SKLEARN))}")
    try:
        import sklearn.datasets as skd
    except ImportError:  # pragma: no cover
        raise ImportError("sklearn_dataset needs scikit-learn: pip install 'gradcode[data]'") \
            from None
    bunch = getattr(skd, _SKLEARN[name])()
    X = np.asarray(bunch.data, dtype=np.float64)
    if standardize:
        sd = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    y = np.asarray(bunch.target)
    return X, y.astype(np.float64 if y.dtype.kind == "f" else np.int64)


def load_svmlight(path: str | os.PathLike, *, n_features: int | None = None,
                  zero_based: bool | str = "auto",
                  binary_labels: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
    """Read a LIBSVM/svmlight file (the format of the papers' datasets) into CSR + labels.

    Args:
        path: the file (``.bz2``/``.gz`` handled by scikit-learn when available).
        n_features: force the feature count (useful for a test file with fewer columns).
        zero_based: whether feature indices start at 0 (``"auto"`` guesses).
        binary_labels: map labels {-1, +1} (or any two values) to {0, 1}.

    Feature indices must be non-negative integers below 2^31 - 1 (scikit-learn's int32
    limit), unique and increasing within a line, and the file may have at most
    :data:`gradcode.core.validate.MAX_ENTRIES` features (a parameter vector of that many
    float64 is 80 MB). The same rules hold with and without scikit-learn installed.

    Raises:
        ValueError: the file is missing, unreadable or malformed, or breaks a rule above
            (the path, and for the built-in parser the line, are named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "it is a directory" if os.path.isdir(path) else "no such file"
        raise ValueError(f"load_svmlight: cannot read dataset {path!r}: {what}")
    try:
        from sklearn.datasets import load_svmlight_file
    except ImportError:
        X, y = _parse_svmlight(path, n_features, zero_based)
    else:
        try:
            X, y = load_svmlight_file(path, n_features=n_features, zero_based=zero_based,
                                      dtype=np.float64)
        except OverflowError:
            raise ValueError(f"load_svmlight: cannot read dataset {path!r}: a feature index "
                             f"is past the int32 range (indices must be < {_MAX_INDEX})") \
                from None
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"load_svmlight: cannot read dataset {path!r}: {exc}") from None
    if X.shape[1] > MAX_ENTRIES:
        raise ValueError(f"load_svmlight: dataset {path!r} has {X.shape[1]:,} features (the "
                         f"largest feature index + 1), more than the limit of "
                         f"{MAX_ENTRIES:,} (gradcode.core.validate.MAX_ENTRIES)")
    X = sp.csr_matrix(X)
    y = np.asarray(y, dtype=np.float64)
    if binary_labels:
        values = np.unique(y)
        if values.size > 2:
            raise ValueError(f"load_svmlight: binary_labels=True but {path!r} has "
                             f"{values.size} distinct labels")
        y = (y == values.max()).astype(np.float64) if values.size == 2 else np.zeros_like(y)
    return X, y


_MAX_INDEX = 2**31 - 1      # scikit-learn's parser stores indices as int32


def _parse_svmlight(path: str, n_features: int | None,
                    zero_based: bool | str) -> tuple[sp.csr_matrix, np.ndarray]:
    """The parser used without scikit-learn: the same rules as scikit-learn's (indices
    non-negative, below 2^31 - 1, unique and increasing within a line)."""
    labels, rows, cols, vals = [], [], [], []
    lineno = 0

    def bad(message: str) -> ValueError:
        return ValueError(f"load_svmlight: cannot read dataset {path!r}: line {lineno}: "
                          f"{message}")

    try:
        with open(path) as fh:
            for lineno, line in enumerate(fh, start=1):  # noqa: B007 - used by bad()
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                tokens = line.split()
                try:
                    labels.append(float(tokens[0]))
                except ValueError:
                    raise bad(f"label {tokens[0]!r} is not a number") from None
                previous = -1
                for tok in tokens[1:]:
                    if tok.startswith("qid:"):
                        continue
                    idx_text, sep, val_text = tok.partition(":")
                    if not sep:
                        raise bad(f"{tok!r} must look like index:value")
                    try:
                        idx = int(idx_text)
                        val = float(val_text)
                    except ValueError:
                        raise bad(f"{tok!r} must be an integer index and a number") from None
                    if idx < 0:
                        raise bad(f"feature index {idx} is negative; indices must be >= 0")
                    if idx >= _MAX_INDEX:
                        raise bad(f"feature index {idx} is past the int32 range (indices "
                                  f"must be < {_MAX_INDEX})")
                    if idx <= previous:
                        raise bad(f"feature index {idx} follows {previous}: indices must be "
                                  f"unique and increasing within a line (as scikit-learn "
                                  f"requires)")
                    previous = idx
                    rows.append(len(labels) - 1)
                    cols.append(idx)
                    vals.append(val)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"load_svmlight: cannot read dataset {path!r}: {exc}") from None
    cols_arr = np.asarray(cols, dtype=np.int64)
    if zero_based is False or (zero_based == "auto" and cols_arr.size and cols_arr.min() > 0):
        if cols_arr.size and cols_arr.min() == 0:
            raise ValueError(f"load_svmlight: cannot read dataset {path!r}: zero_based=False "
                             f"but a feature index is 0")
        cols_arr = cols_arr - 1
    width = n_features or (int(cols_arr.max()) + 1 if cols_arr.size else 1)
    if cols_arr.size and width <= cols_arr.max():
        raise ValueError(f"load_svmlight: cannot read dataset {path!r}: n_features={width} "
                         f"but a feature index is {int(cols_arr.max())}")
    if width > MAX_ENTRIES:
        return sp.csr_matrix((len(labels), width)), np.asarray(labels)   # refused by caller
    X = sp.csr_matrix((vals, (rows, cols_arr)), shape=(len(labels), width))
    return X, np.asarray(labels)


def partition(n_samples: int, k: int, seed: Any = None) -> list[np.ndarray]:
    """Split sample indices 0..n_samples-1 into k parts of sizes differing by at most one.

    Deterministic: ``seed=None`` keeps the original order (contiguous blocks); an int
    shuffles with ``default_rng(seed)`` first. Each part's indices are sorted.

    Raises:
        ValueError: k < 1 or k > n_samples (a part would be empty).
    """
    n_samples = check_int("partition", "n_samples", n_samples, low=1)
    k = check_int("partition", "k", k, low=1)
    if k > n_samples:
        raise ValueError(f"partition: k={k} must be <= n_samples={n_samples} (no empty parts)")
    order = np.arange(n_samples) if seed is None else \
        as_rng("partition", seed).permutation(n_samples)
    return [np.sort(p) for p in np.array_split(order, k)]


def train_test_split(X: Any, y: Any, test_fraction: float = 0.2,
                     seed: Any = 0) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Seeded random split: returns ``X_train, y_train, X_test, y_test``."""
    X, y = as_features("train_test_split", X, y)
    f = check_real("train_test_split", "test_fraction", test_fraction, low=0.0, high=1.0,
                   low_open=True, high_open=True)
    m = X.shape[0]
    n_test = max(1, int(round(f * m)))
    if n_test >= m:
        raise ValueError(f"train_test_split: test_fraction={f} leaves no training sample "
                         f"out of {m}")
    perm = as_rng("train_test_split", seed).permutation(m)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return X[train], y[train], X[test], y[test]
