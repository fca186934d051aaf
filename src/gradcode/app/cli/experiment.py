"""``gradcode compare`` and ``gradcode run``: one experiment path (load and check the
config, prepare, run with live progress, write the results, map the outcome to an exit
code)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import compare as cmp
from ..config import load_config
from ..report import summary_table, write_results
from ..signals import sigterm_as_interrupt, sigterm_received
from ._common import console, fail
from ._exit_codes import EXIT_INTERRUPTED, EXIT_MISSING_EXTRA, EXIT_SCHEME_FAILED, EXIT_TERMINATED

__all__ = ["compare", "run"]

BackendOpt = Annotated[str | None, typer.Option(
    help="simulated | local | ray (default: local)", show_default=False)]
WorkersOpt = Annotated[int | None, typer.Option(help="number of workers n (default 12)",
                                                show_default=False)]
RoundsOpt = Annotated[int | None, typer.Option(help="rounds per scheme (default 30)",
                                               show_default=False)]
SeedOpt = Annotated[int | None, typer.Option(help="seed of data, codes and delays",
                                             show_default=False)]
OutOpt = Annotated[str | None, typer.Option(help="results folder (default "
                                                 "gradcode-results)", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no live progress")]


def _overrides(backend, workers, rounds, seed, out) -> dict[str, Any]:
    """The command-line options that override the config file."""
    return {"backend": backend, "workers": workers, "rounds": rounds, "seed": seed, "out": out}


def _check_out(out: str) -> None:
    """The results folder exists (created if needed) and is a folder."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out={out!r} is a file; it must be a folder (or not exist)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out={out!r}: cannot create the results folder ({exc.strerror})") \
            from None


def _prepared(config_path: Path | None, overrides: dict[str, Any],
              single: bool) -> tuple[Any, Any]:
    """Phase 1, before any work: the checked config and the prepared plan."""
    try:
        cfg = load_config(config_path, overrides=overrides, single=single)
        _check_out(cfg.out)
        return cfg, cmp.prepare(cfg)
    except cmp.MissingExtraError as exc:
        raise fail(str(exc), EXIT_MISSING_EXTRA) from None
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None


def _report(out: str, result: Any, page: Any) -> None:
    """Phase 3: write the results, print the table and map the outcome to an exit code."""
    paths = write_results(out, result.summary, result.histories,
                          time_key=result.summary["time_key"])
    page.print(summary_table(result.summary))
    typer.echo(f"results: {Path(out)}/ ({', '.join(p.name for p in paths)})")
    for name, reason in result.failed.items():
        typer.echo(f"failed: {name}: {reason}", err=True)
    if result.interrupted:
        if result.summary.get("signal") == "SIGTERM":
            typer.echo("terminated (SIGTERM): partial results written", err=True)
            raise typer.Exit(EXIT_TERMINATED)
        typer.echo("interrupted: partial results written", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.failed:
        raise typer.Exit(EXIT_SCHEME_FAILED)


def _experiment(config_path: Path | None, overrides: dict[str, Any], *, single: bool,
                quiet: bool) -> None:
    """Prepare, run (phase 2) and report one experiment."""
    cfg, plan = _prepared(config_path, overrides, single)
    page = console()
    for note in plan.notes:
        typer.echo(f"note: {note}", err=True)
    # Ctrl-C or SIGTERM inside run() is caught there: the finished schemes and the rows
    # of the running one are kept, the backend closes its workers, and we write them
    # below (a second signal while writing ends the process).
    result = cmp.run(plan, progress=not quiet, console=page)
    _report(cfg.out, result, page)


def _run_experiment(config_path: Path | None, overrides: dict[str, Any], *, single: bool,
                    quiet: bool) -> None:
    """The experiment, with Ctrl-C and SIGTERM outside ``run()`` mapped to 130 and 143."""
    with sigterm_as_interrupt():
        try:
            _experiment(config_path, overrides, single=single, quiet=quiet)
        except KeyboardInterrupt:          # Terminated (SIGTERM) is one too
            if sigterm_received():
                typer.echo("terminated (SIGTERM)", err=True)
                raise typer.Exit(EXIT_TERMINATED) from None
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def compare(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML file with the problem, schemes, delays ...")] = None,
    backend: BackendOpt = None, workers: WorkersOpt = None, rounds: RoundsOpt = None,
    seed: SeedOpt = None, out: OutOpt = None, quiet: QuietOpt = False,
) -> None:
    """Run every scheme on the same problem and the same delays; table, plots, report."""
    _run_experiment(config, _overrides(backend, workers, rounds, seed, out), single=False,
                    quiet=quiet)


def run(
    config: Annotated[Path, typer.Argument(help="TOML file with exactly one [scheme]")],
    backend: BackendOpt = None, workers: WorkersOpt = None, rounds: RoundsOpt = None,
    seed: SeedOpt = None, out: OutOpt = None, quiet: QuietOpt = False,
) -> None:
    """Run one experiment described by a TOML file."""
    _run_experiment(config, _overrides(backend, workers, rounds, seed, out), single=True,
                    quiet=quiet)
