"""Run a synth recipe: each generator's stages through one request cache, the screens, then the files.

Every stage (MagPie's query and answer of each turn, the constrained answers, the rewrites) sends all of
its requests to ``smollab.llm.ask`` at once, behind ``<out>/cache.jsonl``: a local model batches them, a
server gets ``concurrency`` in flight, and a rerun (or a resumed, interrupted run) asks only for what
is missing. The client is built at the first missing answer, so a fully cached rerun loads no model,
and kept for the rest of the run. The outputs are a pure function of the recipe and the cache, so a
rerun rewrites them byte for byte. The trade-off of whole stages: turn 2 waits for every turn-1 answer,
and an interrupted stage resumes from the cache rather than from a cursor.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from smollab.llm import RequestCache, ask, client_id, make_client, request_key
from smollab.post.synth import constraints, magpie, rewrite
from smollab.post.synth.config import SynthRecipe
from smollab.post.synth.records import Draft, Screen
from smollab.post.synth.report import build_report, write_report

console = Console(stderr=True)
GENERATORS = {"magpie": magpie, "constraints": constraints, "rewrite": rewrite}
"""each module has ``generate(cfg, synth, ask) -> drafts`` and ``planned_requests(cfg)``"""


class Session:
    """What every stage shares: the cache, the client (built on the first miss), the progress bars, the log."""

    def __init__(self, recipe: SynthRecipe, progress: Progress):
        self.llm = recipe.synth.llm
        self.cache = RequestCache(recipe.out_dir / "cache.jsonl")
        self.log = recipe.out_dir / "log.jsonl"
        self.progress = progress
        self.client = None

    def ask(self, generator: str, stage: str, requests: list[dict]) -> list[dict]:
        ident = client_id(self.llm)
        if self.client is None and any(request_key(ident, r) not in self.cache.entries for r in requests):
            self.client = make_client(self.llm, "synth.llm")
        bar = self.progress.add_task(f"{generator} {stage}", total=len(requests))
        started = time.time()
        replies = ask(requests, self.llm, self.cache, field="synth.llm", client=self.client,
                      progress=lambda n: self.progress.advance(bar, n))
        self.progress.update(bar, completed=len(requests))
        cached = sum(r["cached"] for r in replies)
        line = {"time": round(started, 3), "generator": generator, "stage": stage, "requests": len(requests),
                "cached": cached, "generated": len(requests) - cached,
                "truncated": sum(r["truncated"] for r in replies), "seconds": round(time.time() - started, 3)}
        with self.log.open("a") as f:
            f.write(json.dumps(line) + "\n")
        return replies


@dataclass
class GeneratorAsk:
    """``Session.ask`` bound to one generator, counting its requests (the ``Ask`` generators call)."""

    session: Session
    generator: str
    requests: int = 0
    cached: int = 0
    notes: dict = field(default_factory=dict)

    def __call__(self, stage: str, requests: list[dict]) -> list[dict]:
        replies = self.session.ask(self.generator, stage, requests)
        self.requests += len(requests)
        self.cached += sum(r["cached"] for r in replies)
        return replies


@dataclass
class Generated:
    drafts: list[Draft]
    asked: GeneratorAsk


def run_synth(recipe: SynthRecipe) -> dict:
    """Generate, screen and write everything the recipe asks for; returns the report (also in report.json)."""
    out = recipe.out_dir
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    synth = recipe.synth
    screen = Screen(synth.decontam, synth.dedup)  # built first: a bad task list fails before any generation
    results: dict[str, Generated] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    with progress:
        session = Session(recipe, progress)
        for name, cfg in synth.generators.items():
            asked = GeneratorAsk(session, name)
            results[name] = Generated(GENERATORS[name].generate(cfg, synth, asked), asked)
    for result in results.values():
        for draft in result.drafts:
            if draft.reason is None:
                screen.check(draft)
    drafts = [draft for result in results.values() for draft in result.drafts]
    _write_lines(out / "synth.jsonl", [d.record() for d in drafts if d.reason is None])
    _write_lines(out / "dropped.jsonl", [{"reason": d.reason, "detail": d.detail, **d.record()}
                                         for d in drafts if d.reason is not None])
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    report = build_report(recipe, results, time.time() - started)
    write_report(out, report)
    return report


def _write_lines(path: Path, records: list[dict]) -> None:
    """One JSON object per line, published by a rename so a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)
