"""``smollab synth RECIPE [overrides] [--out DIR] [--dry-run]``: SmolTalk-style synthetic instruction data.

The verb loads and checks the recipe, then either prints the plan (``--dry-run``: requests per
generator and the model, from the recipe alone, so no model, document or evaluation set is loaded) or
runs it and prints the summary table. The plan counts requests as an upper bound: MagPie stops asking
for a conversation once one of its turns is dropped, and tasks a model writes may be dropped before
they are answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from smollab.console import table_console
from smollab.post.synth.config import SynthConfig, SynthRecipe, load_synth_recipe

RecipeArgument = Annotated[Path, typer.Argument(help="synth recipe YAML (recipes/demo-synth.yaml, ...)")]
OverridesArgument = Annotated[list[str] | None, typer.Argument(
    help="dotted overrides, e.g. synth.magpie.n=8 synth.llm.backend=http")]
OutOption = Annotated[str | None, typer.Option(help="output directory (default: the recipe's out, or runs/<name>)")]
DryRunOption = Annotated[bool, typer.Option(help="check the recipe and print the plan; load no model, ask nothing")]


def synth(recipe: RecipeArgument, overrides: OverridesArgument = None, out: OutOption = None,
          dry_run: DryRunOption = False) -> None:
    """Synthetic SFT data as SmolTalk made it: MagPie conversations, IFEval-constrained prompts, rewrites.

    Writes <out>/synth.jsonl (messages format: smollab sft reads it as data.sources.<name>.files), dropped.jsonl
    (each with its reason), report.json, report.md, log.jsonl (one line per stage) and cache.jsonl (every answer,
    so a rerun asks nothing twice).

    Example: smollab synth recipes/demo-synth.yaml --dry-run; smollab synth recipes/demo-synth.yaml synth.magpie.n=4
    """
    loaded = load_synth_recipe(recipe, (overrides or []) + ([f"out={out}"] if out else []))
    if dry_run:
        table_console().print(plan_table(loaded))
        return
    from smollab.post.synth.report import summary_table
    from smollab.post.synth.run import run_synth

    table_console().print(summary_table(run_synth(loaded)))


def plan_table(recipe: SynthRecipe) -> Table:
    from smollab.post.synth.constraints import CATALOGUE
    from smollab.post.synth.run import GENERATORS

    synth = recipe.synth
    table = Table(title=f"smollab synth: {recipe.name} → {recipe.out_dir} (dry run)", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("model", _model(synth))
    total = 0
    for name, cfg in synth.generators.items():
        requests = GENERATORS[name].planned_requests(cfg)
        total += requests
        table.add_row(name, f"≤ {requests:,} requests; " + _generator(name, cfg, len(CATALOGUE)))
    table.add_row("requests", f"≤ {total:,} in all, seed {synth.seed}; answers already in "
                              f"{recipe.out_dir / 'cache.jsonl'} are not asked again")
    decontam = synth.decontam
    tasks = ", ".join(decontam.tasks) if decontam and decontam.tasks else "every vendored task"
    table.add_row("decontam", "off" if decontam is None else f"{decontam.n_gram}-grams of {tasks}")
    dedup = synth.dedup
    table.add_row("dedup", "off" if dedup is None else "exact, normalised: " +
                  (" + ".join(k for k in ("user", "assistant") if getattr(dedup, k)) or "nothing"))
    return table


def _model(synth: SynthConfig) -> str:
    llm = synth.llm
    if llm.backend == "local":
        return f"local {llm.model} ({llm.dtype}, batches of {llm.batch_size})"
    template = "the recipe's chat_template" if synth.chat_template else "SmolLM2's ChatML"
    return (f"http {llm.http.base_url} model {llm.http.model} ({llm.http.concurrency} in flight); MagPie prompts "
            f"rendered with {template}")


def _sampling(s) -> str:
    return f"T {s.temperature:g}, top_p {s.top_p:g}, ≤ {s.max_tokens} tokens"


def _generator(name: str, cfg, catalogue: int) -> str:
    if name == "magpie":
        return (f"{cfg.n} conversations × {cfg.turns} turn(s), {len(cfg.categories)} categories; query "
                f"{_sampling(cfg.query)}; answer {_sampling(cfg.answer)}")
    if name == "constraints":
        tasks = "seed tasks" if cfg.tasks == "seed" else f"MagPie tasks ({_sampling(cfg.query)})"
        return (f"{cfg.n} prompts from {tasks} + 1..{cfg.max_constraints} of {catalogue} IFEval constraints; "
                f"answer {_sampling(cfg.answer)}; kept if IFEval's strict check passes")
    source = cfg.source
    where = source.bundled or source.hf or ", ".join(source.files or [])
    return (f"{cfg.n} of {', '.join(cfg.kinds)} on documents of {where} (≤ {cfg.max_doc_chars:,} chars); "
            f"T {cfg.temperature:g}, ≤ {cfg.summary_max_tokens} tokens per summary, {cfg.rewrite_max_tokens} "
            "per rewrite")
