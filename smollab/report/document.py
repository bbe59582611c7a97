"""The report as data: sections of headings, paragraphs, tables and figures, and the one way numbers are written.

Both renderings (``html.py``, ``markdown.py``) walk the same ``Section`` list, and every table cell is a
string formatted here once, so the page and the markdown cannot disagree on a number. The trade-off:
cells are text, so a renderer cannot restyle numbers (align decimals, colour a best value) beyond what
the string says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str


@dataclass
class Text:
    text: str
    note: bool = False  # a caveat (unreadable lines, a part that could not be read), shown as such


@dataclass
class Code:
    text: str  # shown verbatim (a recipe snippet)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Section:
    name: str  # stable id: what write_report returns and the HTML anchor
    title: str
    blocks: list = field(default_factory=list)


def num(value, digits: int = 4) -> str:
    """A measured number: integers with thousands separators, floats to ``digits`` decimals, none as a dash."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float) and value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.{max(digits - 2, 1)}e}"
    return f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def with_stderr(value: float | None, stderr: float | None) -> str:
    return num(value) if stderr is None else f"{num(value)} ± {num(stderr)}"
