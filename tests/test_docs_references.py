"""Every document the source code points to is in the repository.

Docstrings cite the project's own pages (``docs/theory.md, T<n>`` for the theory,
``docs/ray.md`` ...). These tests read the source tree as text, so they hold wherever the
modules live under ``src/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
THEORY = ROOT / "docs" / "theory.md"

# a file name ending in .md, possibly with a directory part ("docs/theory.md", "README.md")
MD_NAME = re.compile(r"(?<![\w./-])([\w][\w./-]*\.md)\b")
# "theory.md, T5", also "theory.md, T5, T6" / "theory.md, T30-T31" / "theory.md, T3 and T4"
CITATION = re.compile(r"theory\.md,\s*(T\d+(?:\s*(?:,|-|and)\s*T\d+)*)")
SECTION = re.compile(r"^## T(\d+)\. \S", re.MULTILINE)
# material that lives outside the repository and must never be pointed to from it
FORBIDDEN = ("REFERENCES.md", "DESIGN.md", "../shared")


def _python_sources() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no Python files under {SRC}"
    return files


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _sections() -> list[int]:
    return [int(m) for m in SECTION.findall(_text(THEORY))]


def _citations() -> list[tuple[str, int, str]]:
    """(file, line, section number) of every theory citation in src/."""
    out = []
    for path in _python_sources():
        for lineno, line in enumerate(_text(path).splitlines(), 1):
            for match in CITATION.finditer(line):
                for number in re.findall(r"T(\d+)", match.group(1)):
                    out.append((str(path.relative_to(ROOT)), lineno, number))
    return out


def test_md_names_in_src_exist_in_repo() -> None:
    missing = []
    named = 0
    for path in _python_sources():
        for lineno, line in enumerate(_text(path).splitlines(), 1):
            for name in MD_NAME.findall(line):
                named += 1
                if not (ROOT / name).is_file():
                    missing.append(f"{path.relative_to(ROOT)}:{lineno}: {name}")
    assert named > 0, "expected docstrings to name at least one .md page (docs/theory.md)"
    assert not missing, "documents named in src/ but absent from the repository " \
        "(paths are relative to the repository root):\n" + "\n".join(missing)


def test_md_name_pattern() -> None:
    """The pattern finds bare and nested names and ignores look-alikes."""
    text = "see docs/theory.md, T1 and README.md; not foo.mdx or x.md5"
    assert MD_NAME.findall(text) == ["docs/theory.md", "README.md"]


def test_no_pointer_to_material_outside_the_repository() -> None:
    hits = []
    for path in sorted(p for p in SRC.rglob("*") if p.is_file()
                       and "__pycache__" not in p.parts):      # skip stale bytecode
        data = path.read_bytes()
        hits += [f"{path.relative_to(ROOT)}: {word}" for word in FORBIDDEN
                 if word.encode() in data]
    assert not hits, "src/ points outside the repository:\n" + "\n".join(hits)


def test_theory_sections_are_numbered_once_and_in_order() -> None:
    numbers = _sections()
    assert numbers, f"{THEORY} has no '## T<n>. Title' sections"
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_theory_citations_name_existing_sections() -> None:
    cites = _citations()
    assert cites, "expected docstrings to cite docs/theory.md sections"
    known = set(_sections())
    bad = [f"{f}:{line}: T{num}" for f, line, num in cites if int(num) not in known]
    assert not bad, f"citations of sections missing from {THEORY.name} (it has T1..T" \
        f"{max(known)}):\n" + "\n".join(bad)


@pytest.mark.parametrize("text, expected", [
    ("(docs/theory.md, T7)", ["7"]),
    ("docs/theory.md, T30-T31 and more", ["30", "31"]),
    ("docs/theory.md, T3 and T4", ["3", "4"]),
    ("docs/theory.md, T5, T6.", ["5", "6"]),
])
def test_citation_pattern(text: str, expected: list[str]) -> None:
    found = [n for m in CITATION.finditer(text) for n in re.findall(r"T(\d+)", m.group(1))]
    assert found == expected
