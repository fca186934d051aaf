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

One module per command: :mod:`.codes`, :mod:`.analyze`, :mod:`.decompile` and
:mod:`.experiment` (``compare`` and ``run``); :mod:`._common` holds the console and the
error helper, :mod:`._exit_codes` the exit codes.
"""

from typing import Any

from ._exit_codes import (  # noqa: F401
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MISSING_EXTRA,
    EXIT_SCHEME_FAILED,
    EXIT_TERMINATED,
)

__all__ = ["main"]  # and `app` (the typer application, built on first access)

_APP: Any = None


def __getattr__(name: str) -> Any:
    if name == "app":
        return _get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _get_app() -> Any:
    global _APP
    if _APP is None:
        _APP = _build_app()
    return _APP


def _build_app() -> Any:
    """The typer application: every command module's commands, in help order."""
    # The one lazy import site of the command line. Worker processes of the local backend
    # re-import the main module (the console script imports ``gradcode.cli``, which
    # imports this package) through the forkserver/spawn main-module fixup; importing
    # this package must therefore stay cheap: typer, rich and the heavy gradcode modules
    # the commands need load here, on first use of ``main()`` or ``app``, never at import.
    from . import _common, analyze, codes, decompile, experiment

    app = _common.new_app()
    for command in (experiment.compare, experiment.run, codes.codes, analyze.analyze,
                    decompile.decompile):
        app.command()(command)
    return app


def main() -> None:
    """Console entry point (``gradcode``)."""
    _get_app()()
