"""``gradcode decompile``: a JAX function (or its gradient) back into Python source."""

from pathlib import Path
from typing import Annotated

import typer

from ...decompiler import cli_decompile
from ..report import atomic_write_text
from ._common import fail
from ._exit_codes import EXIT_MISSING_EXTRA

__all__ = ["decompile"]


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
        source = cli_decompile(target, specs, grad=grad)     # imports JAX (an extra) lazily
    except ImportError as exc:
        if "jax" in str(exc).lower():
            raise fail("gradcode decompile needs JAX, an optional extra; install it with: "
                       "pip install 'gradcode[jax]'", EXIT_MISSING_EXTRA) from None
        raise fail(str(exc)) from None
    except (ValueError, TypeError, NotImplementedError, AttributeError) as exc:
        raise fail(str(exc)) from None
    if output is not None:
        atomic_write_text(output, source)
        typer.echo(f"wrote {output}")
    else:
        typer.echo(source, nl=not source.endswith("\n"))
