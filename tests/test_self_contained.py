"""A clone of the repository alone must run: nothing in smollab/ or tests/ may point outside it.

A static scan, so it also catches paths that only a rarely-run test would open: Python code (comments
left out) must not climb above the repository with ``Path(__file__)...parents[N]`` / ``.parent``, nor
name the data kit's folder; documentation and data files shipped there (LICENSES.md, rubrics, recipes)
must name upstream datasets, not a local folder. This file is skipped too, and spells the folder's
name in pieces so that it names no path itself.
"""

import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KIT = "".join(("sha", "red"))  # the data kit's folder beside the clone
WORKSPACE = "/" + "work" + "/"  # the absolute folder the kit lives in on the developers' machines
OUTSIDE = re.compile(rf"\.\./{KIT}|{KIT}/data|{WORKSPACE}|[\"']{KIT}[\"']")
FILE_HOPS = re.compile(r"__file__\)(?:\.resolve\(\))?(?P<parents>(?:\.parent\b)*)(?:\.parents\[(?P<n>\d+)\])?")


def scanned_files() -> list[Path]:
    files = [p for folder in ("smollab", "tests") for p in (REPO / folder).rglob("*") if p.suffix in {".py", ".md", ".yaml", ".txt"}]
    return sorted(p for p in files if p != Path(__file__).resolve() and ".venv" not in p.parts)


def without_comments(source: str) -> str:
    """Python source with its comments blanked (a comment naming a folder reads nothing)."""
    lines = source.splitlines(keepends=True)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            (row, start), (_, end) = token.start, token.end
            lines[row - 1] = lines[row - 1][:start] + " " * (end - start) + lines[row - 1][end:]
    return "".join(lines)


def problems(relative: Path, text: str) -> list[str]:
    """What in ``text``, the content of the file at ``relative`` (to the repository root), points outside."""
    if relative.suffix == ".py":
        text = without_comments(text)
    found = [f"names {m.group(0)!r}" for m in OUTSIDE.finditer(text)]
    if relative.suffix == ".py":
        # Path(__file__).parent is 1 folder up, .parents[N] is N + 1; the root is len(parts) up
        depth = len(relative.parts)
        for m in FILE_HOPS.finditer(text):
            hops = m.group("parents").count(".parent") + (int(m.group("n")) + 1 if m.group("n") else 0)
            if hops > depth:
                found.append(f"climbs {hops} folders up from __file__; the repository root is {depth} up")
    return [f"{relative}: {p}" for p in found]


def test_nothing_in_smollab_or_tests_points_outside_the_repository():
    files = scanned_files()
    assert len(files) > 50
    assert [p for path in files for p in problems(path.relative_to(REPO), path.read_text(encoding="utf-8"))] == []


@pytest.mark.parametrize(
    "line, expected",
    [
        ('DATA = Path(__file__).resolve().parents[3] / "data"', ["climbs 4 folders up from __file__; the repository root is 3 up"]),
        ("ROOT = Path(__file__).parent.parent.parent.parent", ["climbs 4 folders up from __file__; the repository root is 3 up"]),
        (f'DATA = ROOT / "{KIT}" / "data"', [f"names '\"{KIT}\"'"]),
        (f'DEMO = Path(__file__).resolve().parents[2] / "recipes"  # see ../{KIT}/README', []),
    ],
)
def test_the_scan_flags_paths_above_the_root_and_ignores_comments(line, expected):
    assert problems(Path("tests/curate/probe.py"), line + "\n") == [f"tests/curate/probe.py: {e}" for e in expected]
