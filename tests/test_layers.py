"""The package's structure: the public API of 0.1.0 still imports from where it did, the
layer contract holds (``lint-imports``), there are no import cycles, and the source passes
``ruff``."""

from __future__ import annotations

import importlib
import json
import pathlib
import shutil
import subprocess
import sys

import grimp
import networkx as nx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SNAPSHOT = json.loads((ROOT / "tests" / "data" / "public_api.json").read_text())


@pytest.mark.parametrize("module_name", sorted(SNAPSHOT))
def test_public_names_still_import_from_their_module(module_name: str) -> None:
    """Every name of the 0.1.0 ``__all__`` snapshot is importable from the same module and
    still listed in its ``__all__`` (new names may be added)."""
    module = importlib.import_module(module_name)
    exported = set(getattr(module, "__all__", ()))
    missing = [name for name in SNAPSHOT[module_name] if not hasattr(module, name)]
    assert not missing, f"{module_name} lost {missing}"
    unlisted = sorted(set(SNAPSHOT[module_name]) - exported)
    assert not unlisted, f"{module_name}.__all__ no longer lists {unlisted}"


def test_no_import_cycles() -> None:
    """The module graph of gradcode (type-checking imports excluded) is acyclic."""
    graph = grimp.build_graph("gradcode", exclude_type_checking_imports=True)
    g = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            g.add_edge(module, imported)
    cycle = next(iter(nx.simple_cycles(g)), None)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_layer_contract() -> None:
    """``lint-imports`` keeps every contract of pyproject.toml."""
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (the dev extra has it)")
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_ruff() -> None:
    """``ruff check`` passes on the source, tests, benchmarks and examples."""
    exe = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent))
    if exe is None:
        pytest.skip("ruff is not installed (the dev extra has it)")
    run = subprocess.run([exe, "check", "src", "tests", "benchmarks", "examples"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
