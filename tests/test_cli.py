"""The CLI end to end through its real entry points (typer's runner and a subprocess)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import descendants
from typer.testing import CliRunner

from gradcode.cli import app

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def gradcode_cmd() -> list[str]:
    """The installed console script when present, else the same entry point via -c."""
    script = Path(sys.executable).parent / "gradcode"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gradcode.cli import main; main()"]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) > 100


def assert_one_line_error(result, *needles: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("error: "), err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


# --------------------------------------------------------------------------- basics
def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in ("compare", "run", "codes", "analyze", "decompile"):
        assert cmd in result.stdout


def test_codes_lists_catalogue():
    from gradcode.codes import CATALOGUE

    result = invoke("codes")
    assert result.exit_code == 0, result.output
    for name in CATALOGUE:
        assert name in result.stdout
    for col in ("load", "replication", "tolerates", "parameters"):
        assert col in result.stdout
    assert "n=12, s=2" in result.stdout
    assert "failed" not in result.stdout


def test_analyze_table_and_plot(tmp_path):
    plot = tmp_path / "frc.png"
    result = invoke("analyze", "fractional_repetition", "--params", "n=6,s=1", "--plot", plot)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fractional_repetition(n=6, s=1)" in out and "worst-case error" in out
    # s=2 of n=6 with FRC groups of 2: expected error k C(s,d)/C(n,d) = 6/15 = 0.4,
    # worst case d * floor(s/d) = 2 (gc.analysis docstrings)
    row2 = next(line for line in out.splitlines() if re.match(r"^\W*2\s", line))
    assert "0.4" in row2 and " 2 " in row2
    assert_png(plot)


def test_analyze_max_s_and_decoder(tmp_path):
    result = invoke("analyze", "expander", "--params", "n=10,d=3,seed=1", "--decoder",
                    "optimal", "--max-s", "3", "--no-plot")
    assert result.exit_code == 0, result.output
    assert "decoder=optimal" in result.stdout
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, needles", [
    (["analyze", "nope"], ["CODE='nope'", "allowed values:", "fractional_repetition"]),
    (["analyze", "expander", "--params", "n=12,x=3"], ["x=", "allowed: n, d, seed"]),
    (["analyze", "fractional_repetition", "--params", "n=7,s=2"],
     ["n=7 must be a multiple of s+1=3"]),
    (["analyze", "expander", "--params", "n12"], ["must look like name=value"]),
    (["analyze", "expander", "--decoder", "magic"], ["--decoder='magic'", "optimal"]),
    (["analyze", "expander", "--max-s", "40"], ["--max-s=40", "[0, 11]"]),
])
def test_analyze_errors(args, needles):
    assert_one_line_error(invoke(*args), *needles)


# --------------------------------------------------------------------------- decompile


def test_decompile_prints_source():
    pytest.importorskip("jax")
    result = invoke("decompile", "jax.numpy:tanh", "--args-shapes", "3:float32")
    assert result.exit_code == 0, result.output
    assert "def " in result.stdout and "tanh" in result.stdout


def test_decompile_grad_to_file(tmp_path):
    pytest.importorskip("jax")
    target = tmp_path / "mod.py"
    target.write_text("import jax.numpy as jnp\n\ndef loss(w, x):\n"
                      "    return jnp.sum(jnp.tanh(x @ w) ** 2)\n")
    out = tmp_path / "grad_loss.py"
    env_path = str(tmp_path)
    sys.path.insert(0, env_path)
    try:
        result = invoke("decompile", "mod:loss", "--args-shapes", "3", "4,3", "--grad",
                        "-o", out)
    finally:
        sys.path.remove(env_path)
        sys.modules.pop("mod", None)
    assert result.exit_code == 0, result.output
    source = out.read_text()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gradcode.decompiler import to_function

    fn = to_function(source)
    w = np.linspace(-1, 1, 3).astype(np.float32)
    x = np.linspace(-2, 2, 12).reshape(4, 3).astype(np.float32)
    want = jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w) ** 2))(w, x)
    np.testing.assert_allclose(np.asarray(fn(w, x)), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_decompile_wrong_number_of_shapes(tmp_path, monkeypatch):
    pytest.importorskip("jax")
    (tmp_path / "mod2.py").write_text("def loss(w, x):\n    return (x @ w).sum()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mod2", raising=False)
    result = invoke("decompile", "mod2:loss", "--args-shapes", "3")
    assert_one_line_error(result, "args_shapes", "mod2:loss", "1 positional")


def test_unbiased_decoder_without_deadline_is_noted(tmp_path):
    from gradcode.codes import CATALOGUE

    if "heterogeneous" not in CATALOGUE:
        pytest.skip("no heterogeneous family")
    cfg = tmp_path / "h.toml"
    cfg.write_text('workers = 6\nrounds = 3\nbackend = "simulated"\n'
                   '[problem]\ndataset = "synthetic"\nsamples = 120\ndim = 3\n'
                   '[delays]\nslow_workers = [1]\n'
                   '[[schemes]]\ncode = "heterogeneous"\nname = "h-first"\n'
                   '[[schemes]]\ncode = "heterogeneous"\nwait = "deadline"\n'
                   'deadline = 0.05\nname = "h-deadline"\n')
    result = invoke("compare", "--config", cfg, "--out", tmp_path / "o", "--quiet")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "unbiased" in line]
    assert len(notes) == 1 and notes[0].startswith("note: h-first:"), result.stderr


def test_decompile_bad_target():
    pytest.importorskip("jax")
    result = invoke("decompile", "no_such_module_xyz:f", "--args-shapes", "3")
    assert_one_line_error(result, "no_such_module_xyz")


def test_decompile_without_jax(monkeypatch):
    for name in list(sys.modules):
        if name == "jax" or name.startswith(("jax.", "jaxlib", "gradcode.decompiler")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jax", None)       # import jax -> ImportError
    result = invoke("decompile", "jax.numpy:tanh", "--args-shapes", "3")
    assert_one_line_error(result, "pip install 'gradcode[jax]'", code=1)


# --------------------------------------------------------------------------- compare / run
def _table_rows(stdout: str, names: list[str]) -> dict[str, list[str]]:
    """Cells of the printed comparison table, keyed by scheme name."""
    rows = {}
    for line in stdout.splitlines():
        for name in names:
            if line.strip().startswith(name + " ") and name not in rows:
                rows[name] = line.strip()[len(name):].split()
    return rows


def check_results(out: Path, stdout: str) -> dict:
    """Every file is there and valid, and the printed table agrees with summary.json."""
    from gradcode.report import fmt

    names = sorted(p.name for p in out.iterdir())
    assert names == ["error_vs_round.png", "history.csv", "loss_vs_time.png", "report.html",
                     "summary.json"], names
    summary = json.loads((out / "summary.json").read_text())
    schemes = summary["schemes"]
    assert schemes
    with open(out / "history.csv") as fh:
        hist = list(csv.DictReader(fh))
    assert {r["scheme"] for r in hist} == {s["name"] for s in schemes}
    for s in schemes:
        assert sum(r["scheme"] == s["name"] for r in hist) == s["rounds"]
    assert_png(out / "loss_vs_time.png")
    assert_png(out / "error_vs_round.png")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    for s in schemes:
        assert s["name"] in html
    printed = _table_rows(stdout, [s["name"] for s in schemes])
    assert set(printed) == {s["name"] for s in schemes}, stdout
    for s in schemes:
        cells = printed[s["name"]]
        want = [fmt(s["load"]), fmt(s["rounds"]),
                "never" if s["time_to_target"] is None else fmt(s["time_to_target"]),
                "-" if s["speedup"] is None else fmt(s["speedup"]) + "x",
                fmt(s["final_loss"]), fmt(s["final_accuracy"]), fmt(s["mean_error"]),
                s["status"]]
        assert cells == want, (s["name"], cells, want)
    return summary


def test_compare_default_lineup_simulated(tmp_path):
    out = tmp_path / "res"
    result = invoke("compare", "--backend", "simulated", "--rounds", "12", "--out", out)
    assert result.exit_code == 0, result.output
    summary = check_results(out, result.stdout)
    names = [s["name"] for s in summary["schemes"]]
    for want in ("uncoded GD", "ignore 2 slowest", "FRC s=2", "cyclic s=2",
                 "ErasureHead d=3", "expander d=3", "graph d=3"):
        assert want in names
    from gradcode.codes import CATALOGUE

    if "heterogeneous" in CATALOGUE:
        assert "heterogeneous" in names
        # first-r responders are no independent draw: its "unbiased" decoder would be biased
        het = next(s for s in summary["schemes"] if s["name"] == "heterogeneous")
        assert het["decoder"] == "optimal" and het["wait"].startswith("first(")
    if "nested" in CATALOGUE:
        assert "nested" in names or "nested (fixed)" in names
    base = summary["schemes"][0]
    assert base["name"] == "uncoded GD" and base["speedup"] == 1.0 and base["mean_error"] == 0
    # exact schemes decode exactly, so they follow uncoded GD's loss curve
    for s in summary["schemes"]:
        if s["name"] in ("FRC s=2", "cyclic s=2"):
            assert s["mean_error"] == 0
            assert s["final_loss"] == base["final_loss"]
    # the same delay draws: FRC and ErasureHead share the code and stop on group coverage
    assert summary["config"]["backend"] == "simulated" and not summary["interrupted"]


def test_compare_with_config_and_overrides(tmp_path):
    out = tmp_path / "o"
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
workers = 6
rounds = 50
backend = "local"
[problem]
dataset = "synthetic"
samples = 300
dim = 5
[delays]
slow_workers = [1]
[[schemes]]
code = "uncoded"
name = "plain"
[[schemes]]
code = "expander"
params = { d = 2 }
wait = "first"
r = 5
name = "exp"
""")
    result = invoke("compare", "--config", cfg, "--backend", "simulated", "--rounds", "8",
                    "--seed", "3", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    summary = check_results(out, result.stdout)
    assert [s["name"] for s in summary["schemes"]] == ["plain", "exp"]
    assert [s["rounds"] for s in summary["schemes"]] == [8, 8]
    assert summary["config"]["seed"] == 3 and summary["config"]["workers"] == 6
    assert summary["schemes"][1]["wait"] == "first(r=5)"


def test_run_one_experiment(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", ROOT / "examples" / "run.toml", "--rounds", "6", "--out", out)
    assert result.exit_code == 0, result.output
    summary = check_results(out, result.stdout)
    assert len(summary["schemes"]) == 1
    assert summary["schemes"][0]["code"].startswith("cyclic_repetition")


@pytest.mark.parametrize("toml, needles", [
    ("wokers = 3\n", ["unknown key 'wokers'", "allowed keys:"]),
    ("workers = 'twelve'\n", ["workers must be an integer"]),
    ("[delays]\nmodel = 'gamma'\n", ["delays.model='gamma'", "allowed values:"]),
    ("workers = 7\n[[schemes]]\ncode = 'fractional_repetition'\nparams = { s = 2 }\n",
     ["schemes[0]", "n=7 must be a multiple of s+1=3"]),
    ("[[schemes]]\ncode = 'graph_scheme'\nparams = { k = 5, d = 2 }\n",
     ["schemes[0]", "n=5 workers but workers=12"]),
    ("[[schemes]]\ncode = 'expander'\nparams = { colour = 1 }\n",
     ["colour", "not a parameter of expander"]),
    ("workers = = 3\n", ["not valid TOML"]),
])
def test_compare_config_errors(tmp_path, toml, needles):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    out = tmp_path / "never"
    result = invoke("compare", "--config", cfg, "--out", out)
    assert_one_line_error(result, *needles)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("args, needles", [
    (["compare", "--backend", "gpu"], ["backend='gpu'", "simulated, local, ray"]),
    (["compare", "--workers", "1"], ["workers=1 must be >= 2"]),
    (["compare", "--rounds", "0"], ["rounds=0 must be >= 1"]),
    (["compare", "--config", "/nonexistent/x.toml"], ["does not exist"]),
    (["run", ROOT / "examples" / "compare.toml"], ["exactly one scheme"]),
])
def test_compare_cli_errors(args, needles):
    assert_one_line_error(invoke(*args), *needles)


def test_out_must_be_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(invoke("compare", "--backend", "simulated", "--out", f),
                          "is a file")


def test_ray_missing_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert_one_line_error(invoke("compare", "--backend", "ray"), "pip install 'gradcode[ray]'",
                          code=1)


# --------------------------------------------------------------------------- real entry point
def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    return set(descendants(pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_readme_command_subprocess(tmp_path):
    """`gradcode compare` through the installed console script, as a user runs it (the
    default line-up; the virtual clock and fewer rounds keep it short): the table it
    prints agrees with summary.json."""
    proc = subprocess.run(gradcode_cmd() + ["compare", "--backend", "simulated", "--rounds",
                                            "6"],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    summary = check_results(tmp_path / "gradcode-results", proc.stdout)
    assert summary["backend"] == "simulated" and len(summary["schemes"]) >= 8
    assert all(s["rounds"] == 6 for s in summary["schemes"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_ctrl_c_keeps_partial_results_and_leaves_no_worker(tmp_path):
    out = tmp_path / "res"
    cfg = tmp_path / "slow.toml"
    cfg.write_text("""
workers = 4
rounds = 400
[problem]
dataset = "synthetic"
samples = 200
dim = 4
[delays]
model = "shifted_exponential"
shift = 0.01
mean = 0.01
[[schemes]]
code = "uncoded"
[[schemes]]
code = "expander"
params = { d = 2 }
""")
    proc = subprocess.Popen(gradcode_cmd() + ["compare", "--config", str(cfg), "--out",
                                              str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        # wait until the workers are up and some rounds are done
        while time.monotonic() < deadline:
            seen |= _descendants(proc.pid)
            if len(seen) >= 5:          # forkserver + 4 workers
                break
            time.sleep(0.1)
        assert len(seen) >= 5, "workers never started"
        time.sleep(3.0)                 # let them load their data and run some rounds
        seen |= _descendants(proc.pid)
        # Ctrl-C at a terminal signals the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted" in stderr
    summary = check_results(out, stdout)         # the table printed = summary.json
    assert summary["interrupted"] is True and summary["backend"] == "local"
    assert summary["schemes"] and 0 < summary["schemes"][0]["rounds"] < 400
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    for _ in range(50):
        if not any(_alive(p) for p in seen):
            break
        time.sleep(0.1)
    assert not [p for p in seen if _alive(p)], "worker processes left behind"


# --------------------------------------------------------------------------- README
def test_readme_setup_and_run_command():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert "gradcode compare" in makefile.split("demo:", 2)[-1]
    assert "```sh\ngradcode compare\n```" in readme
    assert "docs/compare.png" in readme
    png = ROOT / "docs" / "compare.png"
    assert png.exists()
    assert_png(png)
    # the table shown is a real one: every default scheme appears in it
    assert "RESULTS_TABLE" not in readme
    for name in ("uncoded GD", "ignore 2 slowest", "FRC s=2", "cyclic s=2", "ErasureHead d=3",
                 "expander d=3", "graph d=3"):
        assert name in readme


def test_readme_python_tour_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README tour
    out = capsys.readouterr().out
    assert "0.0" in out and "uncoded GD" in out


def test_interrupt_inside_live_progress_keeps_rows(tmp_path, monkeypatch):
    """Ctrl-C while the rich progress display is live (a terminal): the rows of the running
    scheme are kept, later schemes are not run, the summary says interrupted."""
    import io

    from rich.console import Console

    from gradcode.app import compare as cmp
    from gradcode.config import parse_config

    real_train = cmp.train

    def train_then_ctrl_c(*args, callback=None, **kwargs):
        def cb(row):
            callback(row)
            if row["round"] == 4:
                raise KeyboardInterrupt
        return real_train(*args, callback=cb, **kwargs)

    monkeypatch.setattr(cmp, "train", train_then_ctrl_c)
    cfg = parse_config({"backend": "simulated", "workers": 6, "rounds": 20,
                        "out": str(tmp_path), "target_loss": 0.5,
                        "schemes": [{"code": "uncoded"}, {"code": "expander",
                                                          "params": {"d": 2}}]})
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    result = cmp.run(cmp.prepare(cfg), progress=True, console=console)
    assert result.interrupted and result.summary["interrupted"]
    assert list(result.histories) == ["uncoded(n=6)"]
    assert [r["round"] for r in result.histories["uncoded(n=6)"]] == [0, 1, 2, 3, 4]
    assert result.summary["schemes"][0]["rounds"] == 5
    assert "uncoded" in console.file.getvalue()


def test_compare_libsvm_dataset_path(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    y = np.where(X @ np.arange(1, 6) > 0, 1, -1)
    lines = [f"{int(t)} " + " ".join(f"{j + 1}:{v:.5f}" for j, v in enumerate(row))
             for row, t in zip(X, y)]
    data = tmp_path / "toy.svm"
    data.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
workers = 4
backend = "simulated"
rounds = 5
[problem]
path = "{data}"
[[schemes]]
code = "uncoded"
[[schemes]]
code = "cyclic_repetition"
params = {{ s = 1 }}
""")
    out = tmp_path / "o"
    result = invoke("compare", "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    summary = check_results(out, result.stdout)
    assert summary["config"]["problem"]["path"] == str(data)
    assert "toy.svm" in summary["title"]
