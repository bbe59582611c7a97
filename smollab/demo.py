"""``smollab demo``: the whole spine on bundled real data, in minutes on a 2-core CPU.

It runs the embedded ``demo.yaml`` recipe exactly as a user would run the verbs one by one
(tokenizer → tokenize → train → HF export) and then summarises the run from its own artefacts:
the recipe's shares per stage, the shares realised under the schedule stored in the newest
checkpoint (read as ``smollab mixture`` reads it, so a rule that fired shows up here), the last loss
per source and where the model is. The recipe ships inside the package so the demo works from an
installed wheel, not just a checkout.
"""

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from smollab.data.mixture import RECIPE, MixtureSampler, StagePlan
from smollab.data.mixture_report import load_run
from smollab.data.tokenize import tokenize_recipe
from smollab.paths import ASSETS
from smollab.recipe import load_recipe
from smollab.tokenizer import tokenizer_for_recipe
from smollab.train.loop import train

DEMO_RECIPE = ASSETS / "recipes" / "demo.yaml"


def run_demo(out: Path | None, overrides: list[str], console: Console) -> dict:
    recipe = load_recipe(DEMO_RECIPE, overrides + ([f"out={out}"] if out else []))
    timings = {}
    started = time.perf_counter()
    tokenizer = tokenizer_for_recipe(recipe)
    timings["tokenizer"] = time.perf_counter() - started
    console.print(f"[bold]tokenizer[/] {len(tokenizer.tokenizer):,} tokens ({tokenizer.name})")
    started = time.perf_counter()
    tokenize_recipe(recipe, workers=2, console=console)
    timings["tokenize"] = time.perf_counter() - started
    started = time.perf_counter()
    result = train(recipe, overwrite=True)  # the demo always runs from the start: a re-run replaces the last one
    timings["train"] = time.perf_counter() - started

    sampler, _, _ = load_run(recipe.out_dir)
    stages = [_stage_summary(sampler, plan) for plan in sampler.stages]
    summary = {"out": str(recipe.out_dir), "hf_model": str(result.hf_dir), "final_loss": result.final_loss,
               "loss_per_source": result.loss_per_source, "stages": stages, "seconds": timings,
               "epochs": sampler.planned_epochs()}
    (recipe.out_dir / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _stage_summary(sampler: MixtureSampler, plan: StagePlan) -> dict:
    """A stage's shares as the recipe wrote them and as trained under the run's schedule (the sampler's own
    ``consumed`` between the stage's first and last step), with the decisions that changed them."""
    before, after = sampler.consumed(plan.start_step)["sources"], sampler.consumed(plan.end_step)["sources"]
    trained = {s: after[s]["tokens"] - before.get(s, {"tokens": 0})["tokens"] for s in after}
    total = sum(trained.values())
    return {"stage": plan.name, "tokens": plan.num_samples * plan.seq_len,
            "weights": {s: plan.weight(s) for s in plan.sources},
            "realised": {s: t / total for s, t in trained.items() if t},
            "decisions": [{"from_step": segment.start_step, "decision": segment.decision}
                          for segment in sampler.schedule.segments if segment.stage == plan.index and segment.decision != RECIPE]}


def summary_table(summary: dict) -> Table:
    changed = [f"{stage['stage']} from step {d['from_step']}: {d['decision']}"
               for stage in summary["stages"] for d in stage["decisions"]]
    table = Table(title=f"demo: final loss {summary['final_loss']:.3f} — HF model at {summary['hf_model']}",
                  caption=("; ".join(changed) + " (decisions.jsonl)") if changed else None)
    table.add_column("stage")
    table.add_column("tokens", justify="right")
    table.add_column("source")
    table.add_column("recipe", justify="right")
    table.add_column("realised", justify="right")
    table.add_column("last loss", justify="right")
    for stage in summary["stages"]:
        for i, source in enumerate(dict.fromkeys([*stage["weights"], *stage["realised"]])):
            loss = summary["loss_per_source"].get(source) if stage is summary["stages"][-1] else None
            table.add_row(stage["stage"] if i == 0 else "", f"{stage['tokens']:,}" if i == 0 else "", source,
                          f"{stage['weights'].get(source, 0.0):.1%}", f"{stage['realised'].get(source, 0.0):.1%}",
                          f"{loss:.3f}" if loss else "")
    return table
