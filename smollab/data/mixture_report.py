"""``smollab mixture RUN_DIR``: a run's realised mixture schedule and the tokens it consumed per source.

The schedule comes from the newest checkpoint's ``meta.json`` (the recipe's static schedule when
there is no checkpoint yet, or the checkpoint predates stored schedules), and every number is
recomputed from it by the sampler itself, so the report cannot disagree with what training read.
The cost is that the run's token shards must still be there: epochs need each source's length.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from smollab.console import table_console
from smollab.data.mixture import MixtureSampler, Schedule, plan_stages
from smollab.data.heldout import training_streams
from smollab.errors import SmollabError
from smollab.recipe import load_recipe

RESOLVED_RECIPE = "recipe.resolved.yaml"


def newest_checkpoint_meta(run_dir: Path) -> tuple[Path, dict] | None:
    """The newest published checkpoint's ``meta.json`` path and contents (meta.json is written last, so it marks a finished one)."""
    metas = [p / "meta.json" for p in (run_dir / "checkpoints").glob("step-*") if re.fullmatch(r"step-\d+", p.name)]
    metas = sorted((m for m in metas if m.is_file()), key=lambda m: int(m.parent.name[5:]))
    if not metas:
        return None
    try:
        return metas[-1], json.loads(metas[-1].read_text())
    except (OSError, ValueError) as err:
        raise SmollabError(f"{metas[-1]}: unreadable ({err}); delete that checkpoint directory to report the one before") from None


def load_run(run_dir: Path) -> tuple[MixtureSampler, int, str]:
    """The run's sampler under its realised schedule, the step its newest checkpoint resumes at, and where the schedule came from."""
    if not run_dir.is_dir():
        raise SmollabError(f"run directory {run_dir} does not exist; pass the directory `smollab train` wrote (its --out)")
    if not (run_dir / RESOLVED_RECIPE).is_file():
        raise SmollabError(f"{run_dir} has no {RESOLVED_RECIPE}; pass a directory `smollab train` wrote (it writes that file first)")
    recipe = load_recipe(run_dir / RESOLVED_RECIPE, [f"out={run_dir}"])  # shards under the run dir follow it when moved
    newest = newest_checkpoint_meta(run_dir)
    step, schedule, origin = 0, Schedule.static(plan_stages(recipe)), "from the recipe (no checkpoint yet)"
    if newest is not None:
        path, meta = newest
        step = meta["step"]
        origin = f"from the recipe ({path.relative_to(run_dir)} stores none)"
        if "schedule" in meta:
            schedule = Schedule.from_json(meta["schedule"], where=f"{path}: schedule")
            origin = f"from {path.relative_to(run_dir)}"
    return MixtureSampler(recipe, training_streams(recipe, schedule.sources)[0], schedule), step, origin


def schedule_table(sampler: MixtureSampler) -> Table:
    sources = sampler.schedule.sources
    table = Table(title="mixture schedule", caption="steps [first, end); shares are token shares")
    for column in ("segment", "stage", "steps", "tokens", *sources, "decision"):
        table.add_column(column, justify="left" if column in ("stage", "decision") else "right")
    for k, segment in enumerate(sampler.schedule.segments):
        plan = sampler.stages[segment.stage]
        shares = [f"{segment.weight(s):.1%}" if s in segment.sources else "" for s in sources]
        tokens = (segment.end_step - segment.start_step) * plan.samples_per_step * plan.seq_len
        table.add_row(str(k), plan.name, f"{segment.start_step:,}–{segment.end_step:,}", f"{tokens:,}", *shares, segment.decision)
    return table


def consumed_table(sampler: MixtureSampler, step: int) -> Table:
    consumed = sampler.consumed(step)
    done, planned, total = consumed["sources"], sampler.consumed(sampler.total_steps)["sources"], sum(consumed["stages"].values())
    table = Table(title=f"consumed by step {step:,} of {sampler.total_steps:,} ({total:,} tokens)")
    for column in ("source", "tokens", "share", "epochs", "planned tokens", "planned epochs"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source in sampler.schedule.sources:
        now = done.get(source, {"tokens": 0, "epochs": 0.0})
        share = now["tokens"] / total if total else 0.0
        table.add_row(source, f"{now['tokens']:,}", f"{share:.1%}", f"{now['epochs']:.3f}",
                      f"{planned[source]['tokens']:,}", f"{planned[source]['epochs']:.3f}")
    return table


def mixture(run_dir: Annotated[Path, typer.Argument(help="run directory written by `smollab train` (its --out)")]) -> None:
    """The realised mixture schedule of a run (segment, stage, steps, tokens, share per source, the decision that set it)
    and the tokens and epochs consumed per source up to its newest checkpoint.

    Example: smollab mixture runs/demo
    """
    sampler, step, origin = load_run(run_dir)
    console = table_console()
    console.print(f"{run_dir}: mixture schedule {origin}", soft_wrap=True, highlight=False)
    console.print(schedule_table(sampler))
    console.print(consumed_table(sampler, step))
