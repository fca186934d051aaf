"""Datasets and partitioning."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import gradcode as gc


def test_synthetic_is_seeded():
    a = gc.data.synthetic_classification(50, 4, seed=1)
    b = gc.data.synthetic_classification(50, 4, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert set(np.unique(a[1])) <= {0.0, 1.0}
    Xs, ys = gc.data.synthetic_classification(80, 30, seed=0, density=0.1)
    assert sp.issparse(Xs) and Xs.shape == (80, 30)
    X, y = gc.data.synthetic_regression(30, 3, seed=0)
    assert X.shape == (30, 3) and y.shape == (30,)
    X, y = gc.data.synthetic_multiclass(30, 3, classes=4, seed=0)
    assert y.max() < 4


def test_partition_deterministic_and_balanced():
    parts = gc.data.partition(10, 3)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    shuffled = gc.data.partition(10, 3, seed=5)
    again = gc.data.partition(10, 3, seed=5)
    for p, q in zip(shuffled, again):
        np.testing.assert_array_equal(p, q)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="k=11 must be <= n_samples=10"):
        gc.data.partition(10, 11)


def test_train_test_split():
    X, y = gc.data.synthetic_regression(100, 2, seed=0)
    Xa, ya, Xb, yb = gc.data.train_test_split(X, y, 0.25, seed=0)
    assert Xa.shape == (75, 2) and Xb.shape == (25, 2)


def test_sklearn_dataset():
    pytest.importorskip("sklearn")
    X, y = gc.data.sklearn_dataset("breast_cancer")
    assert X.shape[0] == y.shape[0] and abs(X.mean()) < 1e-9
    with pytest.raises(ValueError, match="not a bundled dataset; valid"):
        gc.data.sklearn_dataset("mnist")


def test_svmlight_roundtrip_and_errors(tmp_path):
    path = tmp_path / "d.svm"
    path.write_text("+1 1:0.5 3:1.0\n-1 2:2.0\n+1 1:1.5 2:-1\n")
    X, y = gc.data.load_svmlight(path, binary_labels=True)
    assert sp.issparse(X) and X.shape == (3, 3)
    np.testing.assert_array_equal(y, [1, 0, 1])
    np.testing.assert_array_equal(X.toarray()[0], [0.5, 0, 1.0])
    with pytest.raises(ValueError, match="cannot read dataset .*nope.svm"):
        gc.data.load_svmlight(tmp_path / "nope.svm")
    bad = tmp_path / "bad.svm"
    bad.write_text("1 a:b c\n")
    with pytest.raises(ValueError, match="cannot read dataset"):
        gc.data.load_svmlight(bad)
