"""Run the docstring examples of the core modules (CI only runs pytest over tests/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gradcode
import gradcode.codes

CORE = ["gradcode", "gradcode.code", "gradcode.decoders", "gradcode.analysis",
        "gradcode.designs", "gradcode.latency", "gradcode.nested_protocol",
        "gradcode.nested_scheme", "gradcode.compare"]
FAMILIES = [f"gradcode.codes.{m.name}" for m in pkgutil.iter_modules(gradcode.codes.__path__)
            if not m.name.startswith("_")]
# Modules whose examples run in other test files (training side, estimation, ray extra,
# jax extra), or that carry no examples by design (CLI, config, private helpers).
ELSEWHERE = {"gradcode.training", "gradcode.wait", "gradcode.schemes", "gradcode.stragglers",
             "gradcode.data", "gradcode.problems", "gradcode.optimizers", "gradcode.history",
             "gradcode.estimation", "gradcode.cli", "gradcode.config", "gradcode.report",
             "gradcode.errors", "gradcode.nested_local", "gradcode.backends",
             "gradcode.decompiler"}


@pytest.mark.parametrize("module_name", CORE + FAMILIES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.attempted > 0, f"{module_name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_every_public_module_is_covered() -> None:
    """A new top-level module must join CORE (or say where its examples run)."""
    covered = set(CORE) | ELSEWHERE | {"gradcode.codes"}        # its modules: FAMILIES
    missing = [f"gradcode.{m.name}" for m in pkgutil.iter_modules(gradcode.__path__)
               if not m.name.startswith("_") and f"gradcode.{m.name}" not in covered]
    assert not missing, missing
