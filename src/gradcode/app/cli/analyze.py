"""``gradcode analyze``: random and worst-case decoding error of one code against the
number of stragglers, as a table and a plot."""

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from ...analysis import decoding_error as analysis
from ...codes import CATALOGUE
from ...codes.catalogue import DECODERS, resolve
from ...core.errors import NotDecodableError
from ..config import parse_params
from ..report import analysis_table, matplotlib_available, plot_analysis
from ._common import console, fail

__all__ = ["analyze"]


def _build_code(name: str, params: dict[str, Any]) -> tuple[Any, Any]:
    """The catalogue entry ``name`` and its code built with ``params`` (checked names)."""
    if name not in CATALOGUE:
        raise ValueError(f"analyze: CODE={name!r} is not in the catalogue; allowed values: "
                         f"{', '.join(sorted(CATALOGUE))}")
    entry = CATALOGUE[name]
    allowed = [p for p in inspect.signature(entry.constructor).parameters if p not in ("self",)]
    for key in params:
        if key not in allowed:
            raise ValueError(f"analyze: --params {key}=... is not a parameter of {name}; "
                             f"allowed: {', '.join(allowed)}")
    return entry, entry(**params)


def _checked(code: str, params: str, decoder: str | None, max_s: int | None, trials: int,
             seed: int) -> tuple[Any, str, int]:
    """Phase 1, before any work: the built code, the decoder name and the largest s."""
    entry, built = _build_code(code, parse_params(params, "analyze: --params"))
    dec = decoder or entry.decoder
    if dec not in DECODERS:
        raise ValueError(f"analyze: --decoder={dec!r} is not a known decoder; allowed "
                         f"values: {', '.join(sorted(DECODERS))}")
    resolve(dec, "analyze")
    top = built.n // 2 if max_s is None else max_s
    if not 0 <= top <= built.n - 1:
        raise ValueError(f"analyze: --max-s={top} must lie in [0, n-1] = [0, {built.n - 1}]")
    if trials < 2:
        raise ValueError(f"analyze: --trials={trials} must be >= 2")
    if seed < 0:
        raise ValueError(f"analyze: --seed={seed} must be >= 0")
    return built, dec, top


def _rows(built: Any, dec: str, top: int, trials: int, seed: int) -> list[dict[str, Any]]:
    """Phase 2: one row per s = 0..top (stops, with a note, at the first undecodable s)."""
    rows = []
    for s in range(top + 1):
        try:
            est = analysis.expected_error(built, s, dec, trials=trials, seed=seed)
            worst = analysis.worst_case(built, s, dec, seed=seed)
        except NotDecodableError as exc:
            typer.echo(f"note: stopped at s={s}: {exc}", err=True)
            break
        rows.append({"s": s, "expected_error": est.mean, "stderr": est.stderr,
                     "expected_method": est.method, "worst_error": worst.error,
                     "worst_stragglers": list(worst.stragglers), "worst_method": worst.method})
    return rows


def _plot(rows: list[dict[str, Any]], target: Path, title: str) -> None:
    """Phase 3: the plot, when matplotlib is there (a note on stderr otherwise)."""
    if not matplotlib_available():
        typer.echo("note: no plot: matplotlib is missing (pip install 'gradcode[plots]')",
                   err=True)
        return
    plot_analysis(rows, target, title=title)
    typer.echo(f"plot: {target}")


def analyze(
    code: Annotated[str, typer.Argument(help="a catalogue family, see `gradcode codes`")],
    params: Annotated[str, typer.Option("--params", "-p",
                                        help="constructor parameters, e.g. n=12,s=2")] = "",
    decoder: Annotated[str | None, typer.Option(
        help="decoder name (default: the family's)")] = None,
    max_s: Annotated[int | None, typer.Option(
        "--max-s", help="largest number of stragglers (default: n // 2)")] = None,
    trials: Annotated[int, typer.Option(help="Monte Carlo trials when enumeration is too "
                                              "big")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of the random straggler sets")] = 0,
    plot: Annotated[Path | None, typer.Option(
        help="where to save the plot (default: gradcode-results/analyze-CODE.png)")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="skip the plot")] = False,
) -> None:
    """Random and worst-case decoding error against the number of stragglers."""
    try:
        built, dec, top = _checked(code, params, decoder, max_s, trials, seed)
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    rows = _rows(built, dec, top, trials, seed)
    title = (f"{built.name}: n={built.n}, k={built.k}, load={built.load}, "
             f"tolerates={built.tolerates}, decoder={dec}")
    console().print(analysis_table(rows, title))
    if no_plot or not rows:
        return
    _plot(rows, plot or Path("gradcode-results") / f"analyze-{code}.png", title)
