"""The documentation site builds in strict mode, and its pages hold what they document.

Strict mode turns every MkDocs warning into a failure: a broken link between pages, a
page missing from the navigation, an API reference (``::: gradcode.x``) that does not
resolve, or a docstring mkdocstrings cannot parse. This test is the CI check of the site.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gradcode as gc

ROOT = Path(__file__).resolve().parents[1]
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python")
           if importlib.util.find_spec(m.split(".")[0]) is None]

pytestmark = pytest.mark.skipif(
    bool(MISSING) or not (ROOT / "mkdocs.yml").exists(),
    reason=f"the docs extra is not installed (missing {MISSING}); pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-4000:]}"
    return out


def _text(page: Path) -> str:
    """The page's visible text: tags removed, entities decoded, whitespace collapsed."""
    raw = page.read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


def test_index_page_is_built_with_relative_links(site: Path) -> None:
    index = site / "index.html"
    assert index.is_file()
    text = _text(index)
    assert "gradient coding" in text.lower()
    raw = index.read_text(encoding="utf-8")
    # opened from disk: links point at .html files, not at directories
    assert 'href="getting-started.html"' in raw
    assert 'href="api/index.html"' in raw


def test_api_page_documents_decode_from_its_docstring(site: Path) -> None:
    page = site / "api" / "index.html"
    raw = page.read_text(encoding="utf-8")
    assert 'id="gradcode.decode"' in raw
    text = _text(page)
    summary = gc.decode.__doc__.strip().splitlines()[0]
    assert summary in text
    # the Args section is rendered as a parameter table with decode's real parameters
    for param in ("code", "responders", "decoder"):
        assert re.search(rf'<code>{param}</code>', raw), param


def test_every_public_module_has_its_api_page(site: Path) -> None:
    for name in gc.__all__:
        obj = getattr(gc, name)
        if not hasattr(obj, "__path__") and not hasattr(obj, "__file__"):
            continue   # a class or function of the top level: documented on api/index
        page = site / "api" / f"{name}.html"
        assert page.is_file(), f"no API page for gradcode.{name}"
        assert f'id="gradcode.{name}"' in page.read_text(encoding="utf-8"), name
