"""Run the docstring examples of the core modules (CI only runs pytest over tests/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gradcode.codes

CORE = ["gradcode", "gradcode.code", "gradcode.decoders", "gradcode.analysis"]
FAMILIES = ["gradcode.codes"] + [f"gradcode.codes.{m.name}"
                                 for m in pkgutil.iter_modules(gradcode.codes.__path__)]


@pytest.mark.parametrize("module_name", CORE + FAMILIES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_examples_exist() -> None:
    """The core modules do carry examples (so the test above is not vacuous)."""
    finder = doctest.DocTestFinder()
    for name in CORE:
        examples = sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
        assert examples > 0, name
