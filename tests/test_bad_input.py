"""Bad input from the issue's list: each gives ONE clear error naming the argument, before
any work (no memory error, no traceback from numpy/scipy, exit code 2 from the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_cli import assert_one_line_error, invoke

import gradcode as gc
from gradcode.app.config import ConfigError, load_config, parse_params

# --------------------------------------------------------------------------- code sizes
# Each call runs in a subprocess limited to 2 GB of address space: a regression that
# allocates before checking dies there instead of taking the machine down.
HUGE = [
    ("uncoded", "gc.codes.uncoded(10**9)", "n=1000000000"),
    ("fractional_repetition", "gc.codes.fractional_repetition(10**9, 1)", "n=1000000000"),
    ("cyclic_repetition", "gc.codes.cyclic_repetition(10**9, 1, seed=0)", "n=1000000000"),
    ("cyclic_mds", "gc.codes.cyclic_mds(10**9, 1)", "n=1000000000"),
    ("expander", "gc.codes.expander(n=10**9, d=4, seed=0)", "n=1000000000"),
    ("graph_scheme", "gc.codes.graph_scheme(k=10**9, d=4, seed=0)", "k=1000000000"),
    ("bernoulli", "gc.codes.bernoulli(n=10**9, k=10**9, d=3, seed=0)", "n=1000000000"),
    ("regularized_bernoulli", "gc.codes.regularized_bernoulli(10**9, 10**9, 3, seed=0)",
     "n=1000000000"),
    ("stochastic_block", "gc.codes.stochastic_block(10**9, 10**9, 3, 0.5, 0.1, seed=0)",
     "n=1000000000"),
    ("nested", "gc.codes.nested(10**9, (0, 1), seed=0)", "n=1000000000"),
    ("nested", "gc.codes.nested(2**30, (0, 1), family='dyadic_frc')", "n=1073741824"),
    ("heterogeneous", "gc.codes.heterogeneous((0.1, 0.2), k=10**9)", "k=1000000000"),
    ("soft_bibd", "gc.codes.soft_bibd(10**9, 10**9, 3, seed=0)", "n=1000000000"),
    ("kronecker", "gc.codes.kronecker(gc.codes.uncoded(10**4), gc.codes.uncoded(10**4))",
     "code1"),
]

_PROBE = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
    import gradcode as gc
    out = []
    for expr in json.loads(sys.argv[1]):
        try:
            eval(expr)
            out.append(["no error", ""])
        except BaseException as exc:
            out.append([type(exc).__name__, str(exc)])
    print(json.dumps(out))
""")


def test_huge_codes_are_refused_before_allocating():
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([h[1] for h in HUGE])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    for (family, _, arg), (kind, message) in zip(HUGE, results):
        assert kind == "ValueError", (family, kind, message)
        assert message.startswith(f"{family}: ") and arg in message, message
        assert "limit" in message and "\n" not in message, message


def test_limits_leave_ordinary_codes_alone():
    assert gc.codes.fractional_repetition(3000, 2).n == 3000
    assert gc.codes.expander(n=2000, d=4, seed=0).B.nnz == 8000
    limit = gc.core.validate.MAX_ENTRIES
    assert gc.codes.uncoded(limit).n == limit           # the limit itself is allowed
    with pytest.raises(ValueError, match="MAX_ENTRIES"):
        gc.codes.uncoded(limit + 1)


# --------------------------------------------------------------------------- Code
def test_ragged_matrix_names_the_argument():
    with pytest.raises(TypeError, match=r"^Code: B must be a rectangular numeric matrix"):
        gc.Code([[1.0, 0.0], [1.0]])


def _spans_all_ones(B: np.ndarray, stragglers: tuple[int, ...]) -> bool:
    rows = np.delete(B, list(stragglers), axis=0)
    a = np.linalg.lstsq(rows.T, np.ones(B.shape[1]), rcond=None)[0]
    return bool(np.allclose(rows.T @ a, 1.0))


@pytest.mark.parametrize("B, claim", [
    (np.eye(3), 2),                                    # every partition on one worker
    (np.eye(3), 1),
    (np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0]]), 1),   # covered twice, still fails
])
def test_false_tolerates_is_refused(B, claim):
    import itertools
    # independent check that the claim is false
    assert not all(_spans_all_ones(B, s) for s in itertools.combinations(range(len(B)), claim))
    with pytest.raises(ValueError, match=f"tolerates={claim} does not hold"):
        gc.Code(B, tolerates=claim)


def test_true_tolerates_is_kept():
    B = gc.codes.cyclic_repetition(6, 2, seed=0).toarray()
    assert gc.Code(B, tolerates=2).tolerates == 2
    assert gc.Code(np.ones((4, 3)), tolerates=3).tolerates == 3


def test_uncovered_partitions_are_visible():
    code = gc.Code(np.array([[1.0, 0, 0], [1.0, 0, 0]]))
    assert code.uncovered.tolist() == [1, 2]
    assert gc.codes.fractional_repetition(6, 1).uncovered.size == 0


# --------------------------------------------------------------------------- LIBSVM
@pytest.fixture(params=["sklearn", "builtin"])
def parser(request, monkeypatch):
    if request.param == "sklearn":
        pytest.importorskip("sklearn")
    else:
        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)   # import fails
    return request.param


@pytest.mark.parametrize("index", [2**31, 2**63, 10**30])
def test_libsvm_index_past_int_range(tmp_path, parser, index):
    path = tmp_path / "big.svm"
    path.write_text(f"1 1:0.5 {index}:1\n0 2:1\n")
    with pytest.raises(ValueError, match="load_svmlight: cannot read dataset") as info:
        gc.data.load_svmlight(path)
    assert str(path) in str(info.value) and "int32" in str(info.value)


def test_libsvm_too_many_features(tmp_path, parser):
    path = tmp_path / "wide.svm"
    path.write_text("1 1:0.5 2000000000:1\n0 2:1\n")
    with pytest.raises(ValueError, match="features") as info:
        gc.data.load_svmlight(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("line, phrase", [
    ("1 3:1 3:2", "unique"),
    ("1 4:1 2:2", "unique"),
    ("1 -3:1", "negative"),
])
def test_libsvm_builtin_parser_rules(tmp_path, monkeypatch, line, phrase):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    path = tmp_path / "bad.svm"
    path.write_text(f"0 1:1\n{line}\n")
    with pytest.raises(ValueError) as info:
        gc.data.load_svmlight(path)
    msg = str(info.value)
    assert str(path) in msg and "line 2" in msg and phrase in msg, msg


def test_libsvm_parsers_agree_on_a_valid_file(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    path = tmp_path / "ok.svm"
    path.write_text("+1 1:0.5 3:1.0 # comment\n-1 2:2.0\n+1 qid:3 1:1.5 2:-1\n")
    X1, y1 = gc.data.load_svmlight(path)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    X2, y2 = gc.data.load_svmlight(path)
    np.testing.assert_array_equal(X1.toarray(), X2.toarray())
    np.testing.assert_array_equal(y1, y2)


def test_libsvm_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        gc.data.load_svmlight(tmp_path)


# --------------------------------------------------------------------------- config
def test_duplicate_params():
    with pytest.raises(ValueError, match="n is given twice"):
        parse_params("n=12,n=14", "analyze: --params")


def test_binary_config_is_named(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"binary\.toml is not a TOML file"):
        load_config(path)


def test_directory_config(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


# --------------------------------------------------------------------------- CLI
def test_cli_analyze_huge_code():
    assert_one_line_error(invoke("analyze", "uncoded", "--params", "n=1000000000"),
                          "uncoded: n=1000000000", "limit")


def test_cli_duplicate_params():
    assert_one_line_error(invoke("analyze", "uncoded", "--params", "n=12,n=14"),
                          "--params", "n is given twice")


@pytest.mark.parametrize("k", ["1e9", "1000000000"])
def test_cli_toml_graph_scheme_huge_k(tmp_path, k):
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'workers = 12\nrounds = 2\nbackend = "simulated"\n[scheme]\n'
                   f'code = "graph_scheme"\nparams = {{ k = {k}, d = 3 }}\n')
    assert_one_line_error(invoke("run", cfg, "--out", tmp_path / "o"), "scheme", "k")


def test_cli_too_many_workers_refused_by_a_cheap_check(tmp_path):
    result = invoke("compare", "--workers", "1000000", "--backend", "simulated", "--out",
                    tmp_path / "o")
    assert_one_line_error(result, "workers=1000000", "training samples")


def test_cli_binary_and_directory_configs(tmp_path):
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\x00\xff\xfe garbage")
    assert_one_line_error(invoke("run", binary), "b.toml", "not a TOML file")
    assert_one_line_error(invoke("compare", "--config", tmp_path), "is a directory")
