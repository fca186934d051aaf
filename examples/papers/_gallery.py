"""Shared plumbing of the gallery scripts: where pages go, figures, tables, timing.

Every script in this folder reproduces one paper's headline experiment with gradcode's
public API and calls :func:`write_page` to write ``docs/gallery/<name>.md`` and
``<name>.png``; the documentation site includes them. Run one with
``python examples/papers/<script>.py`` or all with ``make gallery``.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "docs" / "gallery"
_START = time.perf_counter()

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get 4 significant digits."""
    def cell(v) -> str:
        if isinstance(v, str):
            return v.replace("|", "\\|")          # a literal | would split the cell
        if isinstance(v, (float, np.floating)):
            if np.isinf(v):
                return "inf"
            return "0" if abs(v) < 1e-12 else f"{v:.4g}"   # round-off of an exact zero
        return str(v)

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_page(name: str, title: str, paper: str, sections: list[str], fig) -> None:
    """Write ``docs/gallery/<name>.png`` and ``<name>.md`` (title, paper, figure, text)."""
    OUT.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=110)
    seconds = time.perf_counter() - _START
    script = f"examples/papers/{name}.py"
    text = [f"# {title}", "", f"**Paper.** {paper}", "",
            f"![{title}]({name}.png)", "", *sections, "",
            "---", "",
            f"*Reproduce:* `python {script}` ({seconds:.0f} s on "
            f"{os.cpu_count()} cores, Python {platform.python_version()}; "
            "every number above comes from that run).", ""]
    (OUT / f"{name}.md").write_text("\n".join(text), encoding="utf-8")
    print(f"{name}: wrote {OUT / name}.md and .png in {seconds:.1f} s")
