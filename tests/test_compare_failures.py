"""Failures stay per scheme: checked before any worker starts where possible, reported in
the table and summary.json with their reason, the other schemes' results written, and the
exit code says so (2: nothing could run; 3: some scheme failed)."""

from __future__ import annotations

import json

import pytest
from test_cli import assert_one_line_error, invoke

from gradcode.app import compare as cmp

BASE = """
workers = 12
rounds = 4
backend = "simulated"
[problem]
dataset = "synthetic"
samples = 240
dim = 4
"""

MISFITS = [
    ("fractional_repetition", "graph"),
    ("cyclic_repetition", "frc_group"),
    ("cyclic_repetition", "graph"),
    ("cyclic_repetition", "bibd"),
    ("cyclic_repetition", "product"),
    ("cyclic_repetition", "unbiased"),
]


@pytest.mark.parametrize("code, decoder", MISFITS)
def test_run_refuses_a_decoder_that_does_not_fit(tmp_path, code, decoder, monkeypatch):
    started = []
    monkeypatch.setattr("gradcode.engine.training.get_backend",
                        lambda *a, **k: started.append(1))      # must never be reached
    cfg = tmp_path / "x.toml"
    cfg.write_text(BASE + f'[scheme]\ncode = "{code}"\ndecoder = "{decoder}"\n')
    result = invoke("run", cfg, "--out", tmp_path / "o")
    assert_one_line_error(result, "scheme", f"decoder {decoder!r} does not fit")
    assert not started and not (tmp_path / "o" / "summary.json").exists()


def test_compare_reports_the_misfit_and_runs_the_others(tmp_path):
    cfg = tmp_path / "x.toml"
    cfg.write_text(BASE + """
[[schemes]]
code = "uncoded"
[[schemes]]
code = "cyclic_repetition"
decoder = "frc_group"
name = "cyclic with frc_group"
[[schemes]]
code = "fractional_repetition"
""")
    out = tmp_path / "o"
    result = invoke("compare", "--config", cfg, "--out", out)
    assert result.exit_code == 3, result.output
    assert "failed: cyclic with frc_group: schemes[1]: decoder 'frc_group'" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: (s["status"], s["rounds"]) for s in summary["schemes"]}
    assert status["cyclic with frc_group"] == ("failed", 0)
    assert [v for k, v in status.items() if k != "cyclic with frc_group"] == [("ok", 4)] * 2
    assert summary["failed"] == ["cyclic with frc_group"]
    bad = next(s for s in summary["schemes"] if s["status"] == "failed")
    assert "does not fit" in bad["error"]
    assert "failed" in result.stdout                          # the table's status column


def test_a_scheme_failing_during_training_keeps_the_others(tmp_path, monkeypatch):
    """A failure inside train() (here: the backend refuses to start for one scheme, as when
    a worker dies while workers start) is that scheme's failure only."""
    from gradcode.app import compare as training  # compare calls its imported train

    real = training.train

    def flaky(problem, scheme, **kw):
        if scheme.name == "second":
            callback = kw["callback"]
            callback({"round": 0, "loss": 1.0, "error": 0.0, "n_responders": 12,
                      "sim_time": 0.1})
            raise RuntimeError("worker 3 died while the workers were starting\nmore detail")
        return real(problem, scheme, **kw)

    monkeypatch.setattr(training, "train", flaky)
    cfg = tmp_path / "x.toml"
    cfg.write_text(BASE + """
[[schemes]]
code = "uncoded"
name = "first"
[[schemes]]
code = "fractional_repetition"
name = "second"
[[schemes]]
code = "cyclic_repetition"
name = "third"
""")
    out = tmp_path / "o"
    result = invoke("compare", "--config", cfg, "--out", out)
    assert result.exit_code == 3, result.output
    summary = json.loads((out / "summary.json").read_text())
    by = {s["name"]: s for s in summary["schemes"]}
    assert by["first"]["status"] == by["third"]["status"] == "ok"
    assert by["first"]["rounds"] == by["third"]["rounds"] == 4
    assert by["second"]["status"] == "failed" and by["second"]["rounds"] == 1
    assert by["second"]["error"] == ("RuntimeError: worker 3 died while the workers were "
                                     "starting")
    history = (out / "history.csv").read_text()
    assert history.count("\nthird,") == 4 and history.count("\nsecond,") == 1


def test_every_scheme_refused_is_bad_input(tmp_path):
    cfg = tmp_path / "x.toml"
    cfg.write_text(BASE + """
[[schemes]]
code = "cyclic_repetition"
decoder = "graph"
[[schemes]]
code = "cyclic_mds"
decoder = "bibd"
""")
    assert_one_line_error(invoke("compare", "--config", cfg, "--out", tmp_path / "o"),
                          "no scheme can run", "and 1 more failed scheme")


def test_uncovered_partitions_need_an_opt_in(tmp_path):
    scheme = ('[scheme]\ncode = "bernoulli"\nparams = { k = 12, d = 0.3, seed = 1 }\n'
              'wait = "all"\n')
    cfg = tmp_path / "x.toml"
    cfg.write_text(BASE + scheme)
    assert_one_line_error(invoke("run", cfg, "--out", tmp_path / "o"),
                          "partitions on no worker", "allow_uncovered = true")
    cfg.write_text(BASE + scheme + "allow_uncovered = true\n")
    result = invoke("run", cfg, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output


def test_python_api_reports_failures(tmp_path):
    cfg = tmp_path / "x.toml"
    cfg.write_text(BASE + """
[[schemes]]
code = "uncoded"
[[schemes]]
code = "cyclic_repetition"
decoder = "product"
name = "bad"
""")
    result = cmp.compare(str(cfg), out=str(tmp_path / "o"))
    assert list(result.failed) == ["bad"] and "not a product code" in result.failed["bad"]
    assert [s["status"] for s in result.summary["schemes"]] == ["ok", "failed"]
