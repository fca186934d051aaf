"""report.py: atomic files, CSV/JSON, plots (valid PNGs), the HTML report, the tables."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
from pathlib import Path

import pytest

from gradcode.app import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _histories():
    rows_a = [{"round": t, "time": 0.1 * (t + 1), "loss": 0.7 * 0.9 ** t, "error": 0.0,
                   "responders": [0, 1, 2], "dropped": ["3: timed out", "4: died"]}
              for t in range(5)]
    rows_b = [{"round": t, "time": 0.05 * (t + 1), "loss": 0.7 * 0.92 ** t, "error": 0.3 / (t + 1),
                   "accuracy": 0.9} for t in range(4)]
    return {"uncoded GD": rows_a, "expander": rows_b}


def _summary():
    return {"title": "test", "target_loss": 0.5, "time_key": "time", "version": "0",
            "config": {"workers": 3}, "notes": ["a note"],
            "schemes": [{"name": "uncoded GD", "load": 1, "rounds": 5, "time_to_target": 0.4,
                             "speedup": 1.0, "final_loss": 0.4593, "final_accuracy": None,
                             "mean_error": 0.0, "total_time": 0.5},
                        {"name": "expander", "load": 3, "rounds": 4, "time_to_target": None,
                             "speedup": None, "final_loss": 0.5455, "final_accuracy": 0.9,
                             "mean_error": 0.1521, "total_time": 0.2}]}


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    report.atomic_write_text(p, "one")
    report.atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert os.listdir(p.parent) == ["f.txt"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    p.write_text("old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        report.atomic_write_text(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_history_csv(tmp_path):
    p = report.write_history_csv(tmp_path / "h.csv", _histories())
    rows = list(csv.DictReader(io.StringIO(p.read_text())))
    assert len(rows) == 9
    assert rows[0]["scheme"] == "uncoded GD" and rows[0]["responders"] == "0 1 2"
    # as History.to_csv: "worker: reason" entries hold spaces, so they are ;-separated
    assert rows[0]["dropped"] == "3: timed out;4: died" and rows[-1]["dropped"] == ""
    assert rows[-1]["scheme"] == "expander" and rows[-1]["accuracy"] == "0.9"
    assert set(rows[0]) >= {"scheme", "round", "time", "loss", "error", "accuracy"}


def test_summary_json_is_strict(tmp_path):
    p = report.write_summary_json(tmp_path / "s.json",
                                  {"a": math.inf, "b": [1.5, math.nan], "c": None})
    assert json.loads(p.read_text()) == {"a": None, "b": [1.5, None], "c": None}


def test_plots_are_valid_pngs(tmp_path):
    h = _histories()
    assert_png(report.plot_loss_vs_time(h, tmp_path / "l.png", target=0.5))
    assert_png(report.plot_error_vs_round(h, tmp_path / "e.png"))
    rows = [{"s": s, "expected_error": 0.1 * s, "worst_error": 0.3 * s} for s in range(4)]
    assert_png(report.plot_analysis(rows, tmp_path / "a.png", title="t"))


def test_write_results_and_html(tmp_path):
    summary = _summary()
    paths = report.write_results(tmp_path / "out", summary, _histories())
    names = sorted(p.name for p in paths)
    assert names == ["error_vs_round.png", "history.csv", "loss_vs_time.png", "report.html",
                     "summary.json"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "<table>" in html and "never" in html and "0.5455" in html
    assert "src=\"http" not in html and "<script" not in html     # self-contained
    start = html.index("base64,") + len("base64,")
    png = base64.b64decode(html[start:html.index('"', start)])
    assert png[:8] == PNG_MAGIC
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["schemes"][1][
        "final_loss"] == 0.5455


def test_write_results_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "matplotlib_available", lambda: False)
    summary = _summary()
    paths = report.write_results(tmp_path, summary, _histories())
    assert sorted(p.name for p in paths) == ["history.csv", "report.html", "summary.json"]
    assert any("matplotlib" in n for n in summary["notes"])


@pytest.mark.parametrize("value, text", [
    (None, "-"), (3, "3"), (0.0, "0"), (0.123456, "0.1235"), (12.3456, "12.35"),
    (1.5e-5, "1.500e-05"), (math.inf, "inf"), (True, "yes")])
def test_fmt(value, text):
    assert report.fmt(value) == text


def test_summary_table_renders_numbers_as_in_json():
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    console.print(report.summary_table(_summary()))
    out = console.file.getvalue()
    for needle in ("uncoded GD", "expander", "0.4593", "0.5455", "0.1521", "never",
                   "1x", "target loss 0.5"):
        assert needle in out, needle
