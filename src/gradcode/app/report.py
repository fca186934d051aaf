"""Results on disk and on screen: tables (rich), plots (matplotlib, lazily), CSV/JSON, HTML.

Every file is written atomically (a temporary file in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file behind.
Plots need the ``[plots]`` extra (matplotlib); without it they are skipped with a note.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.history import write_atomic

__all__ = [
    "SUMMARY_COLUMNS",
    "analysis_table",
    "atomic_write_bytes",
    "atomic_write_text",
    "codes_table",
    "fmt",
    "matplotlib_available",
    "plot_analysis",
    "plot_error_vs_round",
    "plot_loss_vs_time",
    "summary_table",
    "write_history_csv",
    "write_report_html",
    "write_results",
    "write_summary_json",
]


# --------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` all or nothing (:func:`gradcode.history.write_atomic`),
    creating the parent folder first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: fh.write(data), mode="wb")
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- formatting
def fmt(value: Any, digits: int = 4) -> str:
    """How every number is shown in tables (and the same rounding summary.json keeps)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0:
            return "0"
        if abs(value) < 1e-3 or abs(value) >= 1e6:
            return f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:.{digits}g}"
    return str(value)


SUMMARY_COLUMNS: list[tuple[str, str]] = [
    ("name", "scheme"),
    ("load", "load"),
    ("rounds", "rounds"),
    ("time_to_target", "time (s)\nto target"),
    ("speedup", "speedup"),
    ("final_loss", "final\nloss"),
    ("final_accuracy", "test\naccuracy"),
    ("mean_error", "mean\nerror"),
    ("status", "status"),
]
"""(summary key, table header) of the comparison table, in order."""


# --------------------------------------------------------------------------- CSV / JSON
def write_history_csv(path: str | os.PathLike,
                      histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """One CSV for all schemes: a ``scheme`` column, then every history column."""
    columns: list[str] = ["scheme"]
    for rows in histories.values():
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name, rows in histories.items():
        for row in rows:
            writer.writerow({"scheme": name, **{k: _csv_value(k, v) for k, v in row.items()}})
    return atomic_write_text(path, buf.getvalue())


def _csv_value(column: str, v: Any) -> Any:
    """List cells as :meth:`gradcode.history.History.to_csv` writes them: space-separated,
    except ``dropped`` (``"worker: reason"`` entries, which hold spaces): ``;``-separated."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return (";" if column == "dropped" else " ").join(str(x) for x in v)
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return _jsonable(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_summary_json(path: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
    """summary.json: strict JSON (non-finite floats become null)."""
    return atomic_write_text(path, json.dumps(_jsonable(summary), indent=2, allow_nan=False)
                             + "\n")


# --------------------------------------------------------------------------- plots
def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


_STYLES = ("-", "--", ":", "-.")


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) is not None else math.nan for r in rows]


def plot_loss_vs_time(histories: Mapping[str, Sequence[Mapping[str, Any]]],
                      path: str | os.PathLike, *, time_key: str = "time",
                      target: float | None = None, title: str = "",
                      xlabel: str = "time (s)") -> Path:
    """Training loss against time, one line per scheme (log loss axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for i, (name, rows) in enumerate(histories.items()):
        if rows:
            ax.plot(_series(rows, time_key), _series(rows, "loss"), label=name, lw=1.6,
                    ls=_STYLES[(i // 10) % len(_STYLES)])
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {fmt(target)}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "loss against time")
    return _save(fig, path)


def plot_error_vs_round(histories: Mapping[str, Sequence[Mapping[str, Any]]],
                        path: str | os.PathLike, *, title: str = "") -> Path:
    """Decoding error ||alpha - 1||^2 per round, one line per scheme (symlog axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for i, (name, rows) in enumerate(histories.items()):
        if rows:
            ax.plot(_series(rows, "round"), _series(rows, "error"), label=name, lw=1.4,
                    marker=".", ms=3, ls=_STYLES[(i // 10) % len(_STYLES)])
    ax.set_xlabel("round")
    ax.set_ylabel(r"decoding error $\|\alpha - 1\|^2$")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "decoding error per round")
    return _save(fig, path)


def plot_analysis(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                  title: str = "") -> Path:
    """Random and worst-case error against the number of stragglers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    s = [r["s"] for r in rows]
    ax.plot(s, [r["expected_error"] for r in rows], marker="o", label="random stragglers (mean)")
    ax.plot(s, [r["worst_error"] for r in rows], marker="s", label="worst case")
    ax.set_xlabel("number of stragglers s")
    ax.set_ylabel(r"decoding error $\|\alpha - 1\|^2$")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


# --------------------------------------------------------------------------- tables
def summary_table(summary: Mapping[str, Any]):
    """The comparison as a rich Table (numbers exactly as summary.json rounds them)."""
    from rich import box
    from rich.table import Table

    target = summary.get("target_loss")
    table = Table(title=f"{summary.get('title', 'gradcode compare')}"
                        + (f"; target loss {fmt(target)}" if target is not None else ""),
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for key, label in SUMMARY_COLUMNS:
        if key == "name":
            table.add_column(label, justify="left", overflow="fold", min_width=10)
        else:
            table.add_column(label, justify="right", no_wrap=True)
    for s in summary.get("schemes", []):
        table.add_row(*[_cell(s, key) for key, _ in SUMMARY_COLUMNS])
    return table


def _cell(s: Mapping[str, Any], key: str) -> str:
    v = s.get(key)
    if key == "speedup" and v is not None:
        return f"{fmt(v)}x"
    if key == "time_to_target" and v is None:
        return "never" if s.get("rounds") else "-"
    return fmt(v)


def codes_table(rows: Iterable[Mapping[str, Any]]):
    """``gradcode codes``: the catalogue."""
    from rich.table import Table

    table = Table(title="gradcode codes (built with their default parameters)")
    for label in ("code", "parameters", "n", "k", "load", "replication", "tolerates",
                  "decoder", "what it is"):
        table.add_column(label, justify="right" if label in ("n", "k", "load", "replication",
                                                              "tolerates") else "left")
    for r in rows:
        table.add_row(r["name"], r["params"], str(r["n"]), str(r["k"]), str(r["load"]),
                      str(r["replication"]), str(r["tolerates"]), r["decoder"], r["summary"])
    return table


def analysis_table(rows: Sequence[Mapping[str, Any]], title: str = ""):
    """``gradcode analyze``: error against the number of stragglers."""
    from rich.table import Table

    table = Table(title=title)
    for label in ("s", "random error (mean)", "stderr", "method", "worst-case error",
                  "worst stragglers", "method "):
        table.add_column(label, justify="left" if "stragglers" in label or "method" in label
                         else "right")
    for r in rows:
        table.add_row(str(r["s"]), fmt(r["expected_error"]), fmt(r["stderr"]),
                      r["expected_method"], fmt(r["worst_error"]),
                      " ".join(str(x) for x in r["worst_stragglers"]) or "-", r["worst_method"])
    return table


# --------------------------------------------------------------------------- HTML
def _table_html(summary: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label).replace(chr(10), '<br>')}</th>"
                   for _, label in SUMMARY_COLUMNS)
    body = []
    for s in summary.get("schemes", []):
        cells = "".join(f"<td>{html.escape(_cell(s, key))}</td>" for key, _ in SUMMARY_COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    details = "".join(
        f"<tr><td>{html.escape(str(s.get('name')))}</td><td>{html.escape(str(s.get('code')))}"
        f"</td><td>{html.escape(str(s.get('decoder')))}</td>"
        f"<td>{html.escape(str(s.get('wait')))}</td>"
        f"<td>{html.escape(fmt(s.get('mean_responders')))}</td></tr>"
        for s in summary.get("schemes", []))
    return (f"<table><thead><tr>{head}</tr></thead><tbody>" + "\n".join(body)
            + "</tbody></table>\n<h2>Schemes</h2><table><thead><tr><th>scheme</th><th>code</th>"
            "<th>decoder</th><th>wait policy</th><th>mean responders</th></tr></thead><tbody>"
            + details + "</tbody></table>")


def write_report_html(path: str | os.PathLike, summary: Mapping[str, Any],
                      images: Mapping[str, str | os.PathLike]) -> Path:
    """A self-contained report.html: the table, the settings and the plots (base64 PNG)."""
    figs = []
    for caption, img in images.items():
        data = base64.b64encode(Path(img).read_bytes()).decode("ascii")
        figs.append(f'<figure><img alt="{html.escape(caption)}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
                    "</figcaption></figure>")
    settings = json.dumps(_jsonable(summary.get("config", {})), indent=2)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.get("notes", []))
    status = ("<p class=warn><b>Interrupted</b>: partial results.</p>"
              if summary.get("interrupted") else "")
    title = html.escape(str(summary.get("title", "gradcode compare")))
    target = summary.get("target_loss")
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: .5em; }} img {{ max-width: 100%; }}
pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; }} .warn {{ color: #a00; }}
</style></head><body>
<h1>{title}</h1>
{status}
<p>Target loss: {html.escape(fmt(target))} &middot;
time: {html.escape(str(summary.get('time_axis', '')))} &middot;
decoding error is the squared error ||&alpha; - 1||&sup2;.</p>
{_table_html(summary)}
<ul>{notes}</ul>
{''.join(figs)}
<h2>Settings</h2><pre>{html.escape(settings)}</pre>
<p>gradcode {html.escape(str(summary.get('version', '')))}</p>
</body></html>
"""
    return atomic_write_text(path, doc)


# --------------------------------------------------------------------------- all at once
def write_results(out: str | os.PathLike, summary: dict[str, Any],
                  histories: Mapping[str, Sequence[Mapping[str, Any]]], *,
                  time_key: str = "time") -> list[Path]:
    """Write history.csv, summary.json, the two plots and report.html into ``out``.

    Plots are skipped (with a note in the summary) when matplotlib is missing.
    Returns the paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_history_csv(out / "history.csv", histories)]
    images: dict[str, Path] = {}
    if matplotlib_available():
        title = summary.get("title", "")
        images["training loss against time"] = plot_loss_vs_time(
            histories, out / "loss_vs_time.png", time_key=time_key,
            target=summary.get("target_loss"), title=title,
            xlabel=f"time: {summary.get('time_axis', 'seconds')}")
        images["decoding error per round"] = plot_error_vs_round(
            histories, out / "error_vs_round.png", title=title)
        written += list(images.values())
    else:
        summary.setdefault("notes", []).append(
            "plots skipped: matplotlib is not installed (pip install 'gradcode[plots]')")
    written.append(write_summary_json(out / "summary.json", summary))
    written.append(write_report_html(out / "report.html", summary, images))
    return written
