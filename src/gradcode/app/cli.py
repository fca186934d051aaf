"""The ``gradcode`` command line: a thin typer layer over the library.

Commands::

    gradcode compare [--config FILE] [--backend B] [--workers N] [--rounds R] [--seed S] [--out DIR]
    gradcode run CONFIG.toml [same options]
    gradcode codes
    gradcode analyze CODE [--params n=12,s=2] [--decoder NAME] [--max-s S]
    gradcode decompile module:function --args-shapes 3,4:float32 [...] [--grad]

Exit codes: 0 success, 1 a missing optional extra, 2 bad input (one line on stderr, no
traceback; nothing was started), 3 ``compare``/``run`` finished but at least one scheme
failed (its reason is on stderr and in summary.json; the other schemes' results are
written), 130 interrupted with Ctrl-C (SIGINT) and 143 stopped with SIGTERM (both write
the partial results: the finished schemes and the rounds of the running one).
"""

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

__all__ = ["main"]  # and `app` (the typer application, built on first access)

EXIT_BAD_INPUT = 2
EXIT_MISSING_EXTRA = 1
EXIT_INTERRUPTED = 130
EXIT_SCHEME_FAILED = 3
EXIT_TERMINATED = 143          # 128 + SIGTERM, as gradcode.app.signals.EXIT_TERMINATED

_APP: Any = None


def __getattr__(name: str) -> Any:
    # ``gradcode.cli.app`` is built on first use: worker processes of the local backend
    # re-import the main module (this one, under the console script), and must not pay
    # for importing typer/click there.
    if name == "app":
        return _get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _get_app() -> Any:
    global _APP
    if _APP is None:
        _APP = _build_app()
    return _APP


def _build_app() -> Any:
    """The typer application (all commands)."""
    import typer

    app = typer.Typer(
        name="gradcode",
        help="Gradient coding for straggler-tolerant distributed gradient descent.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    def _short(value: Any) -> str:
        name = getattr(value, "name", None)
        if isinstance(name, str) and hasattr(value, "B"):      # a Code: its name
            return name
        if isinstance(value, (tuple, list)) and len(value) > 4:
            return f"({', '.join(map(str, value[:3]))}, ... {len(value)} values)"
        return str(value)

    def _console(stderr: bool = False):
        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        tty = hasattr(stream, "isatty") and stream.isatty()
        # Off a terminal (pipes, CI, tests) use a wide page so no number is ever cut short.
        return Console(file=stream, width=None if tty else 200, soft_wrap=False,
                       highlight=False)


    def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code)


    # --------------------------------------------------------------------------- codes
    def codes() -> None:
        """List the code catalogue: parameters, load, replication and tolerance."""
        from ..codes import CATALOGUE
        from .report import codes_table

        rows = []
        for name, entry in CATALOGUE.items():
            params = ", ".join(f"{k}={_short(v)}" for k, v in entry.defaults.items())
            try:
                code = entry()
                facts = {"n": code.n, "k": code.k, "load": code.load,
                         "replication": code.replication, "tolerates": code.tolerates}
            except Exception as exc:  # noqa: BLE001 - a broken entry must not hide the others
                facts = {"n": "?", "k": "?", "load": "?", "replication": "?", "tolerates": "?"}
                params += f" (failed: {exc})"
            rows.append(dict(name=name, params=params, decoder=entry.decoder,
                             summary=entry.summary, **facts))
        _console().print(codes_table(rows))
        typer.echo("Build any of them with other parameters: "
                   "gradcode analyze CODE --params n=24,s=3")


    # --------------------------------------------------------------------------- analyze
    def _build_code(name: str, params: dict[str, Any]):
        from ..codes import CATALOGUE

        if name not in CATALOGUE:
            raise ValueError(f"analyze: CODE={name!r} is not in the catalogue; allowed values: "
                             f"{', '.join(sorted(CATALOGUE))}")
        entry = CATALOGUE[name]
        allowed = [p for p in inspect.signature(entry.constructor).parameters
                   if p not in ("self",)]
        for key in params:
            if key not in allowed:
                raise ValueError(f"analyze: --params {key}=... is not a parameter of {name}; "
                                 f"allowed: {', '.join(allowed)}")
        return entry, entry(**params)


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
        from ..analysis import decoding_error as analysis
        from ..codes.catalogue import DECODERS, resolve
        from .config import parse_params
        from .report import analysis_table, matplotlib_available, plot_analysis

        try:
            kwargs = parse_params(params, "analyze: --params")
            entry, built = _build_code(code, kwargs)
            dec = decoder or entry.decoder
            if dec not in DECODERS:
                raise ValueError(f"analyze: --decoder={dec!r} is not a known decoder; allowed "
                                 f"values: {', '.join(sorted(DECODERS))}")
            resolve(dec, "analyze")
            top = built.n // 2 if max_s is None else max_s
            if not 0 <= top <= built.n - 1:
                raise ValueError(f"analyze: --max-s={top} must lie in [0, n-1] = "
                                 f"[0, {built.n - 1}]")
            if trials < 2:
                raise ValueError(f"analyze: --trials={trials} must be >= 2")
            if seed < 0:
                raise ValueError(f"analyze: --seed={seed} must be >= 0")
        except (ValueError, TypeError) as exc:
            raise _fail(str(exc)) from None

        from ..core.errors import NotDecodableError

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
                         "worst_stragglers": list(worst.stragglers),
                         "worst_method": worst.method})
        title = (f"{built.name}: n={built.n}, k={built.k}, load={built.load}, "
                 f"tolerates={built.tolerates}, decoder={dec}")
        _console().print(analysis_table(rows, title))
        if no_plot or not rows:
            return
        if not matplotlib_available():
            typer.echo("note: no plot: matplotlib is missing (pip install 'gradcode[plots]')",
                       err=True)
            return
        target = plot or Path("gradcode-results") / f"analyze-{code}.png"
        plot_analysis(rows, target, title=title)
        typer.echo(f"plot: {target}")


    # --------------------------------------------------------------------------- decompile
    def decompile(
        target: Annotated[str, typer.Argument(help="module:function, e.g. mypkg.model:loss")],
        shapes: Annotated[list[str] | None, typer.Argument(
            help="more argument specs (same form as --args-shapes)", show_default=False)] = None,
        args_shapes: Annotated[list[str] | None, typer.Option(
            "--args-shapes", "-a",
            help="one per positional argument, e.g. 3,4:float32 (repeat or list them)")] = None,
        grad: Annotated[bool, typer.Option("--grad", help="decompile jax.grad(function)")] = False,
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", help="write the source here instead of stdout")] = None,
    ) -> None:
        """Turn a JAX function (or its gradient) back into editable Python source."""
        specs = list(args_shapes or []) + list(shapes or [])
        try:
            from ..decompiler import cli_decompile

            source = cli_decompile(target, specs, grad=grad)
        except ImportError as exc:
            if "jax" in str(exc).lower():
                raise _fail("gradcode decompile needs JAX, an optional extra; install it with: "
                            "pip install 'gradcode[jax]'", EXIT_MISSING_EXTRA) from None
            raise _fail(str(exc)) from None
        except (ValueError, TypeError, NotImplementedError, AttributeError) as exc:
            raise _fail(str(exc)) from None
        if output is not None:
            from .report import atomic_write_text

            atomic_write_text(output, source)
            typer.echo(f"wrote {output}")
        else:
            typer.echo(source, nl=not source.endswith("\n"))


    # --------------------------------------------------------------------------- compare / run
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
        return {"backend": backend, "workers": workers, "rounds": rounds, "seed": seed, "out": out}


    def _run_experiment(config_path: Path | None, overrides: dict[str, Any], *, single: bool,
                        quiet: bool) -> None:
        from . import compare as cmp
        from .config import load_config
        from .report import summary_table, write_results
        from .signals import sigterm_as_interrupt, sigterm_received

        with sigterm_as_interrupt():
            try:
                _experiment(cmp, load_config, summary_table, write_results, config_path,
                            overrides, single=single, quiet=quiet)
            except KeyboardInterrupt:          # Terminated (SIGTERM) is one too
                if sigterm_received():
                    typer.echo("terminated (SIGTERM)", err=True)
                    raise typer.Exit(EXIT_TERMINATED) from None
                typer.echo("interrupted", err=True)
                raise typer.Exit(EXIT_INTERRUPTED) from None

    def _experiment(cmp, load_config, summary_table, write_results, config_path, overrides, *,
                    single: bool, quiet: bool) -> None:
        try:
            cfg = load_config(config_path, overrides=overrides, single=single)
            _check_out(cfg.out)
            plan = cmp.prepare(cfg)
        except cmp.MissingExtraError as exc:
            raise _fail(str(exc), EXIT_MISSING_EXTRA) from None
        except (ValueError, TypeError) as exc:
            raise _fail(str(exc)) from None
        console = _console()
        for note in plan.notes:
            typer.echo(f"note: {note}", err=True)
        # Ctrl-C or SIGTERM inside run() is caught there: the finished schemes and the rows
        # of the running one are kept, the backend closes its workers, and we write them
        # below (a second signal while writing ends the process).
        result = cmp.run(plan, progress=not quiet, console=console)
        paths = write_results(cfg.out, result.summary, result.histories,
                              time_key=result.summary["time_key"])
        console.print(summary_table(result.summary))
        typer.echo(f"results: {Path(cfg.out)}/ ({', '.join(p.name for p in paths)})")
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

    def _check_out(out: str) -> None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ValueError(f"out={out!r} is a file; it must be a folder (or not exist)")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"out={out!r}: cannot create the results folder ({exc.strerror})") \
                from None

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

    for command in (compare, run, codes, analyze, decompile):
        app.command()(command)
    return app


def main() -> None:
    """Console entry point (``gradcode``)."""
    _get_app()()


if __name__ == "__main__":  # pragma: no cover
    main()
