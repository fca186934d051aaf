"""Run the docstring examples of the core modules (CI only runs pytest over tests/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gradcode
import gradcode.codes

CORE = ["gradcode", "gradcode.core.code", "gradcode.core.decoders", "gradcode.core.fixed_weights",
        "gradcode.analysis", "gradcode.analysis.decoding_error", "gradcode.analysis.latency",
        "gradcode.codes.catalogue", "gradcode.codes.designs", "gradcode.protocols.nested",
        "gradcode.protocols.nested_scheme", "gradcode.app.compare", "gradcode.engine.rounds",
        "gradcode.backends.tasks", "gradcode.backends.simulated", "gradcode.engine.checkpoints",
        "gradcode.app.signals", "gradcode.app.references"]
FAMILIES = [f"gradcode.codes.{m.name}" for m in pkgutil.iter_modules(gradcode.codes.__path__)
            if not m.name.startswith("_") and f"gradcode.codes.{m.name}" not in CORE]
# Modules whose examples run in other test files (training side, estimation, ray extra,
# jax extra), or that carry no examples by design (CLI, config, helpers, facades).
ELSEWHERE = {"gradcode.engine.training", "gradcode.engine.wait", "gradcode.engine.schemes",
             "gradcode.models.stragglers", "gradcode.models.data", "gradcode.models.problems",
             "gradcode.models.optimizers", "gradcode.engine.history", "gradcode.engine.estimation",
             "gradcode.app.cli", "gradcode.app.cli.analyze", "gradcode.app.cli.codes",
             "gradcode.app.cli.decompile", "gradcode.app.cli.experiment", "gradcode.app.config",
             "gradcode.app.torch_model",
             "gradcode.app.report",
             "gradcode.core.errors", "gradcode.core.validate", "gradcode.core.tolerance",
             "gradcode.core.cgls", "gradcode.analysis.worst_case_search",
             "gradcode.decompiler", "gradcode.engine.autopilot"}
LAYERS = ("core", "codes", "analysis", "models", "engine", "protocols", "backends", "app")


@pytest.mark.parametrize("module_name", CORE + FAMILIES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.attempted > 0, f"{module_name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_every_module_is_covered() -> None:
    """A new module must join CORE (or say where its examples run)."""
    covered = set(CORE) | ELSEWHERE | set(FAMILIES)
    missing = []
    for layer in LAYERS:
        package = importlib.import_module(f"gradcode.{layer}")
        if layer == "backends":
            continue                      # backends: examples run in their own test files
        missing += [f"gradcode.{layer}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                    if not m.name.startswith("_") and f"gradcode.{layer}.{m.name}" not in covered]
    assert not missing, missing
