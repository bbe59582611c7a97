"""``write_report``: find a run directory's parts, lay out the sections that have data, write report.html and report.md.

Sections come in one fixed order (overview, demo steps, loss, learning rate, mixture, evaluation,
curation, SFT, DPO, benchmark scores, sweep, RegMix) and a section is only emitted when some part gives
it a block, so a missing optional part leaves no empty heading. Several parts of one kind (two
pretraining runs side by side) share that kind's section, each under its own heading. Both files are
rendered from the same section list and replaced atomically (written beside, then renamed), so a
reader never sees half a report; the cost is holding every PNG in memory until both are written.
"""

from __future__ import annotations

import os
from pathlib import Path

from smollab.report import curation, post, pretrain, sweep
from smollab.report.collect import Found, Part, discover
from smollab.report.document import Heading, Section, Table, Text, num
from smollab.report.html import render_html
from smollab.report.markdown import render_markdown
from smollab.report.plots import palette

KIND_NAMES = {"pretrain": "pretraining run", "sft": "SFT run", "dpo": "DPO run", "curation": "curation run",
              "evals": "evaluation results", "sweep": "ablation sweep", "steps": "whole-loop demo steps"}


def write_report(run_dir: Path, out: Path | None = None) -> dict:
    """Write ``report.html`` and ``report.md`` into ``out`` (default: ``run_dir``); returns their paths and section names."""
    run_dir = Path(run_dir)
    found = discover(run_dir)
    sections = build_sections(found)
    title = f"smollab report: {run_dir.resolve().name}"
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "md": out / "report.md"}
    _replace(paths["html"], render_html(title, sections))
    _replace(paths["md"], render_markdown(title, sections))
    return {**paths, "sections": [s.name for s in sections]}


def label(part: Part, root: Path) -> str:
    name = part.label(root)
    return root.resolve().name if name == "." else name


def build_sections(found: Found) -> list[Section]:
    root = found.root
    colors = {id(p): palette(pretrain.sources(p)) for p in found.of("pretrain")}
    per_part = [
        ("loss", "Training loss", "pretrain", lambda p: pretrain.loss_blocks(p, colors[id(p)])),
        ("lr", "Learning rate", "pretrain", pretrain.lr_blocks),
        ("mixture", "Mixture and decisions", "pretrain", lambda p: pretrain.mixture_blocks(p, colors[id(p)])),
        ("evaluation", "Evaluation during training", "pretrain", lambda p: pretrain.evaluation_blocks(p, colors[id(p)])),
        ("curation", "Curation", "curation", curation.curation_blocks),
        ("sft", "Supervised fine-tuning", "sft", post.post_blocks),
        ("dpo", "Preference optimisation (DPO)", "dpo", post.post_blocks),
    ]
    sections = [overview(found)]
    if steps := found.of("steps"):
        sections.append(Section("steps", "Steps", steps_blocks(steps, root)))
    for name, title, kind, blocks_of in per_part:
        sections.append(Section(name, title, _each(found.of(kind), blocks_of, root)))
    if files := [f for part in found.of("evals") for f in part.files]:
        labels = {f.path: str(f.path.relative_to(root)) for f in files}
        sections.append(Section("scores", "Benchmark scores (smollab eval results)", post.scores_blocks(files, labels)))
    sections.append(Section("sweep", "Ablation sweep", _each(found.of("sweep"), sweep.sweep_blocks, root)))
    sections.append(Section("regmix", "RegMix fit", _each(found.of("sweep"), sweep.regmix_blocks, root)))
    return [s for s in sections if s.blocks]


def _each(parts: list[Part], blocks_of, root: Path) -> list:
    """The blocks of every part of one kind, each under its part's heading when there are several."""
    blocks = []
    for part in parts:
        if part_blocks := blocks_of(part):
            blocks += ([Heading(label(part, root))] if len(parts) > 1 else []) + part_blocks
    return blocks


def state(part: Part) -> str:
    if part.kind == "pretrain":
        return pretrain.state(part)
    if part.kind in ("sft", "dpo"):
        return post.state(part)
    if part.kind == "sweep":
        return sweep.state(part)
    if part.kind == "evals":
        return f"{len(part.files)} file(s): " + ", ".join(f.path.name for f in part.files)
    if part.kind == "steps":
        return f"{len(part.steps)} steps"
    return "report found" if part.report else "classifier only (no curation_report.json yet)"


def overview(found: Found) -> Section:
    root = found.root
    rows = []
    for part in found.parts:
        files = part.line_files
        read = sum(len(f.records) for f in files)
        rows.append([label(part, root), KIND_NAMES[part.kind], state(part), num(read) if files else "–",
                     num(sum(len(f.unreadable) for f in files)) if files else "–"])
    blocks = [Table(["part", "kind", "state", "JSONL lines read", "unreadable lines"], rows,
                    f"what {root} holds, recognised by the files each part contains")]
    detailed = [p for p in found.parts if p.kind in ("pretrain", "sft", "dpo")]
    for part in detailed:
        facts = pretrain.overview(part) if part.kind == "pretrain" else post.overview(part)
        blocks += [Heading(f"{label(part, root)}: {KIND_NAMES[part.kind]}")] + facts
    notes = list(found.notes)
    for part in found.parts:
        notes += [note for f in part.line_files if (note := f.note(root))]
        notes += [f"{label(part, root)}: {note}" for note in part.notes]
    blocks += [Text(note, note=True) for note in notes]
    return Section("overview", "Overview", blocks)


def steps_blocks(parts: list, root: Path) -> list:
    """demo.json: one row per step (done, failed or pending), its seconds and, for a failed one, its error line."""
    blocks = []
    for part in parts:
        rows = [[str(i), str(s.get("name")), str(s.get("status", "–")),
                 num(s.get("seconds"), 1) if s.get("status") != "pending" else "–", str(s.get("error") or "")]
                for i, s in enumerate(part.steps, 1)]
        total = sum(s["seconds"] for s in part.steps if isinstance(s.get("seconds"), (int, float)))
        done = sum(s.get("status") == "done" for s in part.steps)
        blocks.append(Table(["#", "step", "status", "seconds", "error"], rows,
                            f"{label(part, root)}/demo.json: {done} of {len(rows)} steps done, {num(total, 1)} s in all"))
    return blocks


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
