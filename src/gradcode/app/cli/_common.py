"""What every command shares: the typer application's settings, the console and the
one-line error exit."""

import sys

import typer
from rich.console import Console

from ._exit_codes import EXIT_BAD_INPUT

__all__ = ["console", "fail", "new_app"]


def new_app() -> typer.Typer:
    """The ``gradcode`` typer application, without its commands."""
    return typer.Typer(
        name="gradcode",
        help="Gradient coding for straggler-tolerant distributed gradient descent.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); off a terminal, a wide page."""
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    # Off a terminal (pipes, CI, tests) use a wide page so no number is ever cut short.
    return Console(file=stream, width=None if tty else 200, soft_wrap=False, highlight=False)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr; the exit to raise (``raise fail(...) from None``)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
