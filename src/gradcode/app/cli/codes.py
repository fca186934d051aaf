"""``gradcode codes``: the code catalogue as a table."""

from typing import Any

import typer

from ...codes import CATALOGUE
from ..report import codes_table
from ._common import console

__all__ = ["codes"]


def _short(value: Any) -> str:
    """A parameter value short enough for a table cell (a code by its name)."""
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "B"):      # a Code: its name
        return name
    if isinstance(value, (tuple, list)) and len(value) > 4:
        return f"({', '.join(map(str, value[:3]))}, ... {len(value)} values)"
    return str(value)


def _row(name: str, entry: Any) -> dict[str, Any]:
    """One catalogue entry, built with its defaults (a failure is noted, not raised)."""
    params = ", ".join(f"{k}={_short(v)}" for k, v in entry.defaults.items())
    try:
        code = entry()
        facts = {"n": code.n, "k": code.k, "load": code.load,
                 "replication": code.replication, "tolerates": code.tolerates}
    except Exception as exc:  # noqa: BLE001 - a broken entry must not hide the others
        facts = {"n": "?", "k": "?", "load": "?", "replication": "?", "tolerates": "?"}
        params += f" (failed: {exc})"
    return dict(name=name, params=params, decoder=entry.decoder, summary=entry.summary,
                **facts)


def codes() -> None:
    """List the code catalogue: parameters, load, replication and tolerance."""
    rows = [_row(name, entry) for name, entry in CATALOGUE.items()]
    console().print(codes_table(rows))
    typer.echo("Build any of them with other parameters: "
               "gradcode analyze CODE --params n=24,s=3")
