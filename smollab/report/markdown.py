"""The sections as markdown: the same tables, cell for cell, and a pointer to each figure in report.html.

Markdown cannot hold the figures without files beside it, so it names them and leaves the pixels to
the HTML page; what it keeps are the numbers, for diffs, pull requests and grep. Pipes in cells are
escaped and line breaks folded, so every table stays one row per line.
"""

from __future__ import annotations

from smollab.report.document import Code, Figure, Heading, Section, Table, Text


def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _block(block) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _block(block) -> list[str]:
    if isinstance(block, Heading):
        return [f"### {block.text}"]
    if isinstance(block, Text):
        return [f"> {block.text}" if block.note else block.text]
    if isinstance(block, Code):
        return ["```yaml", block.text, "```"]
    if isinstance(block, Table):
        lines = ["| " + " | ".join(map(_cell, block.header)) + " |", "|" + "---|" * len(block.header)]
        lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in block.rows]
        return lines + (["", f"*{_cell(block.caption)}*"] if block.caption else [])
    if isinstance(block, Figure):
        return [f"*Figure in report.html: {block.title}.*"]
    raise TypeError(f"unknown report block {type(block).__name__}")
