"""Training loop, schemes, wait policies, optimisers, history, bad input (simulated)."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest

import gradcode as gc
from gradcode import stragglers as st
from gradcode import training as tr


@pytest.fixture(scope="module")
def logreg():
    X, y = gc.data.synthetic_classification(480, 6, seed=0)
    return gc.problems.logistic_regression(X, y, 12, l2=1e-3)


DELAYS = st.ShiftedExponential(1.0, 1.0, seed=4)


# ------------------------------------------------------------------ exact recovery
@pytest.mark.parametrize("scheme", [
    tr.uncoded(12),
    tr.exact(gc.codes.fractional_repetition(n=12, s=2)),
    tr.exact(gc.codes.fractional_repetition(n=12, s=2), decoder="frc_group"),
    tr.exact(gc.codes.cyclic_repetition(n=12, s=3, seed=1)),
    tr.exact(gc.codes.cyclic_mds(n=12, s=2)),
], ids=lambda s: s.name)
def test_exact_schemes_recover_the_full_gradient(logreg, scheme):
    be = gc.backends.SimulatedBackend()
    be.start(logreg, scheme.code, delays=DELAYS)
    rng = np.random.default_rng(0)
    for t in range(4):
        w = rng.standard_normal(logreg.dim)
        res = tr.coded_round(be, scheme, t, w)
        np.testing.assert_allclose(res.g_hat, logreg.full_gradient(w), rtol=1e-9, atol=1e-13)
        assert res.decoding.error < 1e-9
        if scheme.code.tolerates:
            assert len(res.responders) <= 12 - 1 or scheme.name.startswith("uncoded")


def test_train_reduces_loss_and_logs_rows(logreg):
    h = tr.train(logreg, tr.exact(gc.codes.cyclic_repetition(n=12, s=2, seed=0)), rounds=15,
                 delays=DELAYS)
    assert len(h) == 15
    loss = h.column("loss")
    assert loss[-1] < h.meta["initial_loss"] and np.all(np.diff(loss) < 1e-12)
    row = h.final
    for key in ("round", "wall_time", "sim_time", "round_time", "responders", "n_responders",
                "error", "grad_rel_error", "loss", "accuracy"):
        assert key in row
    assert row["grad_rel_error"] < 1e-9
    np.testing.assert_allclose(h.column("sim_time"), np.cumsum(h.column("round_time")))


# ------------------------------------------------------------------ baselines and policies
def test_uncoded_waits_for_all_and_sim_time_is_max_delay(logreg):
    h = tr.train(logreg, tr.uncoded(12), rounds=3, delays=DELAYS)
    load = np.ones(12)
    for r in h:
        assert r["n_responders"] == 12
        assert r["round_time"] == pytest.approx(DELAYS.sample(r["round"], load).max())


def test_every_scheme_sees_the_same_draws(logreg):
    """Same seed -> the same delays for every scheme (fair comparison)."""
    a = tr.train(logreg, tr.ignore_stragglers(12, 3), rounds=3, delays=DELAYS)
    b = tr.train(logreg, tr.approximate(gc.codes.uncoded(12), r=9, decoder="one_step"),
                 rounds=3, delays=DELAYS)
    assert [r["responders"] for r in a] == [r["responders"] for r in b]
    for r in a:
        d = DELAYS.sample(r["round"], np.ones(12))
        assert r["responders"] == np.argsort(d, kind="stable")[:9].tolist()


def test_ignore_stragglers_rescales(logreg):
    scheme = tr.ignore_stragglers(12, 4)
    be = gc.backends.SimulatedBackend()
    be.start(logreg, scheme.code, delays=DELAYS)
    res = tr.coded_round(be, scheme, 0, np.zeros(logreg.dim))
    assert len(res.responders) == 8
    G = logreg.partition_gradients(np.zeros(logreg.dim))
    np.testing.assert_allclose(res.g_hat, 12 / 8 * G[res.responders].sum(axis=0), rtol=1e-12)


def test_erasurehead_first_w_or_all_groups(logreg):
    scheme = tr.erasurehead(n=12, d=3, w=8)
    be = gc.backends.SimulatedBackend()
    be.start(logreg, scheme.code, delays=DELAYS)
    G = logreg.partition_gradients(np.zeros(logreg.dim))
    groups = np.arange(12) // 3
    for t in range(5):
        res = tr.coded_round(be, scheme, t, np.zeros(logreg.dim))
        covered = set(groups[res.responders].tolist())
        assert len(res.responders) == 8 or len(covered) == 4
        assert len(covered) == 4 or len(res.responders) == 8
        if len(set(groups[res.responders[:-1]].tolist())) == 4:
            pytest.fail("should have stopped earlier: all groups were covered")
        expect = sum(G[3 * g:3 * g + 3].sum(axis=0) for g in covered)
        np.testing.assert_allclose(res.g_hat, expect, rtol=1e-12)   # no rescaling


def test_erasurehead_policy_rejects_non_frc():
    with pytest.raises(ValueError, match="not a fractional-repetition code"):
        gc.training.Scheme(gc.codes.cyclic_repetition(n=6, s=1, seed=0), "optimal",
                           tr.erasurehead_wait(3))


def test_deadline_and_until_error(logreg):
    code = gc.codes.regularized_bernoulli(n=12, k=12, d=3, seed=0)
    h = tr.train(logreg, tr.Scheme(code, "optimal", tr.deadline(2.0)), rounds=4, delays=DELAYS)
    for r in h:
        d = DELAYS.sample(r["round"], code.row_support.astype(float))
        assert r["n_responders"] == int(np.sum(d <= 2.0))
        assert r["round_time"] == (2.0 if r["n_responders"] < 12 else d.max())
    h = tr.train(logreg, tr.approximate(code, eps=0.5), rounds=4, delays=DELAYS)
    assert all(r["error"] <= 0.5 for r in h)
    h = tr.train(logreg, tr.Scheme(code, "optimal", tr.first(6, deadline=0.5)), rounds=2,
                 delays=DELAYS)
    assert all(r["round_time"] <= 0.5 for r in h)


def test_until_decodable_stops_at_first_decodable_set(logreg):
    code = gc.codes.fractional_repetition(n=12, s=2)
    scheme = tr.exact(code)
    be = gc.backends.SimulatedBackend()
    be.start(logreg, code, delays=DELAYS)
    res = tr.coded_round(be, scheme, 1, np.zeros(logreg.dim))
    assert gc.decode(code, res.responders).error < 1e-9
    assert gc.decode(code, res.responders[:-1]).error > 1e-9


def test_failures_become_stragglers_and_exact_fallback(logreg):
    delays = st.Failures(0.3, base=DELAYS, seed=1)
    h = tr.train(logreg, tr.exact(gc.codes.cyclic_repetition(n=12, s=1, seed=0)), rounds=6,
                 delays=delays)
    fell_back = [r for r in h if r["decoder"] == "optimal"]
    assert fell_back, "with p=0.3 some round loses more than one worker"
    assert all(r["error"] > 0 for r in fell_back)
    assert h.final["loss"] < h.meta["initial_loss"]


def test_ten_thousand_workers_are_feasible():
    X, y = gc.data.synthetic_classification(20000, 5, seed=0)
    prob = gc.problems.logistic_regression(X, y, 10000)
    code = gc.codes.regularized_bernoulli(n=10000, k=10000, d=2, seed=0)
    h = tr.train(prob, tr.approximate(code, r=9000), rounds=2, delays=st.Exponential(1, seed=0))
    assert h.final["n_responders"] == 9000 and h.final["wall_time"] < 30


# ------------------------------------------------------------------ optimisers
def test_nesterov_matches_the_papers_update():
    opt = gc.optimizers.Nesterov(0.1)
    w0 = np.array([1.0, -2.0])
    opt.reset(w0)
    w, u = w0.copy(), w0.copy()
    ws = w0.copy()
    for t in range(5):
        g = 2 * ws                                      # gradient of ||w||^2 at w_t
        theta = 2.0 / (t + 2.0)
        ytmp = (1 - theta) * w + theta * u
        new = ytmp - 0.1 * g
        u = w + (new - w) / theta
        w = new
        ws = opt.step(ws, 2 * ws, t)
        np.testing.assert_allclose(ws, w, rtol=1e-15)


@pytest.mark.parametrize("optimizer,extra", [("gd", {}), ("nesterov", {}),
                                             ("momentum", {"optimizer_options": {"beta": 0.5}})])
def test_optimizers_converge(logreg, optimizer, extra):
    h = tr.train(logreg, tr.uncoded(12), rounds=30, optimizer=optimizer, **extra)
    assert h.final["loss"] < 0.9 * h.meta["initial_loss"]


def test_torch_optimizer(logreg):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    h = tr.train(logreg, tr.uncoded(12), rounds=20, optimizer=torch.optim.Adam, lr=0.05)
    assert h.final["loss"] < h.meta["initial_loss"]


def test_target_loss_and_callback_stop(logreg):
    h = tr.train(logreg, tr.uncoded(12), rounds=200, target_loss=0.5)
    assert h.final["loss"] <= 0.5 and len(h) < 200
    seen = []
    h = tr.train(logreg, tr.uncoded(12), rounds=50, callback=lambda row: seen.append(row) or
                 row["round"] == 4)
    assert len(h) == 5 and len(seen) == 5


def test_history_files(logreg, tmp_path):
    h = tr.train(logreg, tr.ignore_stragglers(12, 2), rounds=4, delays=DELAYS)
    h.to_json(tmp_path / "h.json")
    back = gc.history.History.from_json(tmp_path / "h.json")
    assert back.rows[2]["responders"] == h.rows[2]["responders"]
    assert back.final["loss"] == h.final["loss"]
    json.loads((tmp_path / "h.json").read_text())
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].startswith("round,wall_time,sim_time") and len(lines) == 5
    assert h.time_to_loss(h.final["loss"]) <= h.final["sim_time"]


# ------------------------------------------------------------------ bad input, before start
class _SpyBackend(gc.backends.SimulatedBackend):
    started = False

    def start(self, *a, **k):
        type(self).started = True
        super().start(*a, **k)


def test_bad_input_fails_before_any_worker_starts(logreg, tmp_path):
    spy = _SpyBackend()
    with pytest.raises(ValueError, match="k=10 partitions but the problem is split into k=12"):
        tr.train(logreg, tr.uncoded(10), rounds=2, backend=spy)
    with pytest.raises(ValueError, match="r=20 must be <= the code's n=12"):
        tr.train(logreg, tr.Scheme(gc.codes.uncoded(12), "optimal", tr.first(20)), rounds=2,
                 backend=spy)
    trace = tmp_path / "t.csv"
    trace.write_text("".join(f"0,{i},0.1\n" for i in range(11)))
    with pytest.raises(ValueError, match="no records for workers \\[11\\]"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, delays=st.Trace(trace))

    class Negative(st.DelayModel):
        def sample(self, round, load):
            return -np.ones(len(load))

    with pytest.raises(ValueError, match="delays must be >= 0 seconds"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, delays=Negative())
    with pytest.raises(ValueError, match="delays='gamma' is not a known model"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, delays="gamma")
    with pytest.raises(ValueError, match="backend='mpi' is not known"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend="mpi")
    with pytest.raises(ValueError, match="optimizer='adam' is not known"):
        tr.train(logreg, tr.uncoded(12), rounds=2, optimizer="adam", backend=spy)
    with pytest.raises(TypeError, match="scheme must be"):
        tr.train(logreg, gc.codes.uncoded(12), rounds=2, backend=spy)
    with pytest.raises(ValueError, match="rounds=-1 must be >= 0"):
        tr.train(logreg, tr.uncoded(12), rounds=-1, backend=spy)
    with pytest.raises(ValueError, match="n=7 must be a multiple of d=2"):
        tr.erasurehead(7, 2, 3)
    with pytest.raises(ValueError, match="seed=-1 must be >= 0"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, seed=-1)
    with pytest.raises(TypeError, match="callback must be callable or None, got 3"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, callback=3)
    with pytest.raises(TypeError, match="checkpoint must be a directory path"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, checkpoint=1)
    with pytest.raises(TypeError, match="resume must be a bool, got 'yes'"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, checkpoint=tmp_path,
                 resume="yes")
    with pytest.raises(ValueError, match="grad_error must be True, False or 'auto', got 1"):
        tr.train(logreg, tr.uncoded(12), rounds=2, backend=spy, grad_error=1)
    assert not _SpyBackend.started


@pytest.mark.parametrize("module", ["gradcode.training", "gradcode.wait", "gradcode.schemes",
                                    "gradcode.stragglers", "gradcode.data", "gradcode.problems",
                                    "gradcode.optimizers", "gradcode.history",
                                    "gradcode.backends", "gradcode.backends.simulated"])
def test_docstring_examples(module):
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0


# ---------------------------------------------------------------- run-level decisions
def _ls(k=6):
    X, y = gc.data.synthetic_regression(30 * k, 3, seed=1)
    return gc.problems.least_squares(X, y, k=k)


def test_fallback_column_and_one_warning_per_run(caplog):
    prob = _ls()
    code = gc.codes.fractional_repetition(n=6, s=1)          # groups {0,1} {2,3} {4,5}
    delays = st.Constant([np.inf, np.inf, 1.0, 1.0, 1.0, 1.0])   # a whole group fails
    with caplog.at_level("WARNING", logger="gradcode.training"):
        hist = tr.train(prob, tr.exact(code), rounds=4, delays=delays)
    assert [r["fallback"] for r in hist] == [True] * 4
    assert all(r["decoder"] == "optimal" for r in hist)
    assert hist.meta["fallback_rounds"] == 4
    lines = [r for r in caplog.records if "could not decode" in r.getMessage()]
    assert len(lines) == 1 and "round 0" in lines[0].getMessage()
    # alpha misses exactly the lost group's two partitions: error 2
    assert all(r["error"] == pytest.approx(2.0) for r in hist)
    ok = tr.train(prob, tr.exact(code), rounds=2, delays=st.Constant(1.0))
    assert [r["fallback"] for r in ok] == [False, False] and "fallback_rounds" not in ok.meta


@pytest.mark.parametrize("mode", ["stop", "continue"])
def test_nonfinite_loss_stops_or_continues_with_one_line(mode, caplog):
    prob = _ls()
    with caplog.at_level("WARNING", logger="gradcode.training"), \
            np.errstate(all="ignore"):
        hist = tr.train(prob, tr.uncoded(6), rounds=400, lr=1e3, on_nonfinite=mode)
    lines = [r for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(lines) == 1
    if mode == "stop":
        assert len(hist) < 400 and "non-finite" in hist.meta["stopped"]
        assert not np.isfinite(hist.final["loss"])
    else:
        assert len(hist) == 400 and "nonfinite_from_round" in hist.meta
    with pytest.raises(ValueError, match="on_nonfinite must be 'stop' or 'continue'"):
        tr.train(prob, tr.uncoded(6), rounds=1, on_nonfinite="ignore")


def test_eval_every_counts_from_round_zero_after_resume(tmp_path):
    prob = _ls()
    kw = dict(rounds=8, eval_every=3, checkpoint=tmp_path, checkpoint_every=1)
    tr.train(prob, tr.uncoded(6), callback=lambda row: row["round"] == 1, **kw)
    hist = tr.train(prob, tr.uncoded(6), resume=True, **kw)
    evaluated = [r["round"] for r in hist if np.isfinite(r["loss"])]
    assert evaluated == [0, 3, 6, 7]


def test_empty_round_log_lines_are_true(caplog):
    prob = _ls()
    with caplog.at_level("WARNING", logger="gradcode.training"):
        tr.train(prob, tr.uncoded(6, deadline=0.5), rounds=1, delays=st.Constant(1.0))
        tr.train(prob, tr.uncoded(6), rounds=1, delays=st.Constant(np.inf))
    text = [r.getMessage() for r in caplog.records]
    assert sum("within the deadline (0.5 s)" in m for m in text) == 1
    assert sum("nothing could be decoded" in m for m in text) == 1


def test_round_timeout_argument():
    prob = _ls()
    stuck = st.Constant([1.0] * 5 + [1e6])
    hist = tr.train(prob, tr.uncoded(6), rounds=2, delays=stuck, round_timeout=10.0)
    assert [r["n_responders"] for r in hist] == [5, 5]
    assert [r["round_time"] for r in hist] == [10.0, 10.0]
    with pytest.raises(ValueError, match="round_timeout"):
        tr.train(prob, tr.uncoded(6), rounds=1, round_timeout=-1)
