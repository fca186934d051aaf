"""Griffe extension used by the documentation build (not part of the package).

gradcode's docstrings are written for ``help()`` and doctest: a singular ``Example:``
section and Sphinx roles such as ``:func:`decode```. Before mkdocstrings parses them,
this extension turns ``Example:`` into Google style's ``Examples:`` section (so doctests
render as code) and each Sphinx role into inline code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class GradcodeDocstrings(griffe.Extension):
    """Normalise gradcode's docstrings for the Google-style parser."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = _ROLE.sub(r"`\1`", obj.docstring.value)
        obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", text)
