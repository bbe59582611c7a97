"""The sections as one self-contained HTML page: inline CSS, figures as base64 PNG, no script, no external link.

The page opens offline from a file, e-mail or CI artefact, and prints; the cost is its size (every
figure is inside it, some tens of kilobytes each). Text is escaped once, here. Content is laid out for
a page about 1000 pixels wide (figures are 900), and wide tables scroll sideways instead of squeezing.
"""

from __future__ import annotations

import base64
import html
import re

from smollab.report.document import Code, Figure, Heading, Section, Table, Text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:960px;margin:0 auto;padding:16px 20px 48px;background:#fff}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px;color:#444}
nav{font-size:14px;margin:4px 0 12px}nav a{margin-right:12px;color:#1f5fa8;text-decoration:none}
.scroll{overflow-x:auto;margin:8px 0 4px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d5d5d5;padding:3px 8px;vertical-align:top}
th{background:#f0f0f0;text-align:left}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.caption{font-size:12px;color:#666;margin:2px 0 12px}
figure{margin:12px 0}figure img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#666;margin-top:2px}
p.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;font-size:13px}
pre{background:#f5f5f5;padding:8px;font-size:13px;overflow-x:auto}
"""

NUMERIC = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?( ± [\d.,e+-]+%?\*?)?$")


def render_html(title: str, sections: list[Section]) -> str:
    nav = "".join(f"<a href='#{s.name}'>{html.escape(s.title)}</a>" for s in sections)
    body = "".join(_section(s) for s in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body><main><h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}</main></body></html>\n")


def _section(section: Section) -> str:
    return f"<section id='{section.name}'><h2>{html.escape(section.title)}</h2>{''.join(map(_block, section.blocks))}</section>"


def _block(block) -> str:
    if isinstance(block, Heading):
        return f"<h3>{html.escape(block.text)}</h3>"
    if isinstance(block, Text):
        return f"<p{' class=note' if block.note else ''}>{html.escape(block.text)}</p>"
    if isinstance(block, Code):
        return f"<pre>{html.escape(block.text)}</pre>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode()
        caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure><img alt='{html.escape(block.title, quote=True)}' src='data:image/png;base64,{data}'>{caption}</figure>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def _table(table: Table) -> str:
    """Columns whose every filled cell is a number are right-aligned (decimals line up); mixed ones stay left."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    numeric = [all(NUMERIC.match(c) for c in column if c not in ("", "–")) for column in zip(*table.rows)]
    rows = "".join("<tr>" + "".join(f"<td class=n>{html.escape(c)}</td>" if right else f"<td>{html.escape(c)}</td>"
                                    for c, right in zip(row, numeric)) + "</tr>" for row in table.rows)
    caption = f"<p class=caption>{html.escape(table.caption)}</p>" if table.caption else ""
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>{caption}"
