"""What a synth run reports: per generator, records, kept, dropped per reason, requests, new answers, cache hits.

The counts are read off the drafts and the per-generator request counters once, into ``report.json``;
``report.md`` and the terminal table are renderings of that dict, never recounted. Every reason any
generator can drop for is listed even at zero, so two reports line up; reasons that carry a name
(``constraint_failed:<id>``, ``contaminated:<task>``) appear only when they occur.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich.table import Table

from smollab.llm import client_id
from smollab.post.synth.config import SynthRecipe
from smollab.post.synth.records import REASONS

_COLUMNS = ("records", "kept", "requests", "generated", "cached")


def build_report(recipe: SynthRecipe, results: dict, seconds: float) -> dict:
    """``results``: generator name → ``run.Generated`` (its drafts and its request counters)."""
    generators = {}
    for name, result in results.items():
        dropped = Counter(d.reason for d in result.drafts if d.reason is not None)
        generators[name] = {
            "records": len(result.drafts), "kept": sum(d.reason is None for d in result.drafts),
            "requests": result.asked.requests, "generated": result.asked.requests - result.asked.cached,
            "cached": result.asked.cached,
            "dropped": {reason: dropped[reason] for reason in REASONS} | dict(sorted(dropped.items())),
            **result.asked.notes,
        }
    total = {column: sum(g[column] for g in generators.values()) for column in _COLUMNS}
    return {"name": recipe.name, "out": str(recipe.out_dir), "model": client_id(recipe.synth.llm),
            "seconds": round(seconds, 1), "total": total, "generators": generators}


def _dropped(generator: dict) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in generator["dropped"].items() if n) or "-"


def summary_table(report: dict) -> Table:
    table = Table("generator", "records", "kept", "dropped", "requests", "generated", "cached",
                  title=f"smollab synth: {report['name']} → {report['out']}/synth.jsonl "
                        f"({report['model']}, {report['seconds']:.0f} s)")
    rows = [(name, g, _dropped(g)) for name, g in report["generators"].items()] + [("total", report["total"], "")]
    for name, g, dropped in rows:
        table.add_row(name, str(g["records"]), str(g["kept"]), dropped, str(g["requests"]), str(g["generated"]),
                      str(g["cached"]))
    return table


def markdown(report: dict) -> str:
    lines = [f"# smollab synth: {report['name']}", "",
             f"Model `{report['model']}`, {report['seconds']:.0f} s; kept conversations in `synth.jsonl`, "
             "dropped ones with their reason in `dropped.jsonl`.", "",
             "| generator | records | kept | dropped | requests | generated | cached |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for name, g in report["generators"].items():
        lines.append(f"| {name} | {g['records']} | {g['kept']} | {_dropped(g)} | {g['requests']} | {g['generated']} "
                     f"| {g['cached']} |")
    t = report["total"]
    lines.append(f"| total | {t['records']} | {t['kept']} | | {t['requests']} | {t['generated']} | {t['cached']} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
