"""The stage table: what a recipe will do, computed without data, weights or a GPU.

``smollab train RECIPE --dry-run`` prints it so a 11T-token recipe can be checked on a laptop:
steps and token ranges per stage (boundaries rounded to whole steps), the mixture shares, and the
WSD phases each stage spans. It reads the same plan objects the sampler and schedule use, so what
is printed is what will run.
"""

import json

from rich.table import Table

from smollab.data.mixture import plan_stages
from smollab.errors import SmollabError
from smollab.presets import build_config, count_parameters
from smollab.recipe import Recipe
from smollab.tokenizer import TRAINING_RECORD, load_tokenizer
from smollab.train.schedule import WSD


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{unit}"
    return f"{n:g}"


def stage_rows(recipe: Recipe) -> list[dict]:
    plans = plan_stages(recipe)
    schedule = WSD(recipe.schedule, recipe.optim.lr, plans[-1].end_step)
    tokens_per_step = recipe.batch.tokens_per_step
    rows = []
    for plan in plans:
        changes = [plan.start_step] + sorted(
            b for b in {schedule.warmup_steps, schedule.decay_start} if plan.start_step < b < plan.end_step
        )
        phases = [(schedule.phase(step), step) for step in changes]
        rows.append({
            "stage": plan.name,
            "steps": (plan.start_step, plan.end_step),
            "tokens": (plan.start_step * tokens_per_step, plan.end_step * tokens_per_step),
            "seq_len": plan.seq_len,
            "rope_theta": plan.rope_theta,
            "mixture": {s: plan.weight(s) for s in plan.sources},
            "lr_phase": " →\n".join(p if s == plan.start_step else f"{p}@{s:,}" for p, s in phases),
        })
    return rows


def planned_vocab_size(recipe: Recipe) -> tuple[int, str]:
    """The vocabulary the run's model will have, and where that number comes from, without training anything.

    A named tokenizer is loaded (the bundled one takes milliseconds); a per-run BPE counts as
    ``tokenizer.train.vocab_size`` until it exists (BPE training may stop a few tokens short).
    """
    train = recipe.tokenizer.train
    if train is not None:
        record = recipe.out_dir / "tokenizer" / TRAINING_RECORD
        if record.exists():
            return json.loads(record.read_text())["vocab_size"], "trained tokenizer"
        return train.vocab_size, "tokenizer.train.vocab_size"
    try:
        return len(load_tokenizer(recipe.tokenizer.source)), f"tokenizer {recipe.tokenizer.source}"
    except SmollabError:
        return build_config(recipe.model).vocab_size, "the preset's vocab: the tokenizer is unreachable"


def stage_table(recipe: Recipe) -> Table:
    title = f"{recipe.name}: {_human(recipe.total_tokens)} tokens, {_human(recipe.batch.tokens_per_step)} tokens/step"
    if not recipe.model.init_from:
        vocab, origin = planned_vocab_size(recipe)
        params = count_parameters(build_config(recipe.model, vocab))
        title += f", {params:,} parameters ({recipe.model.preset}, vocab {vocab:,} from {origin})"
    table = Table(title=title)
    for column in ("stage", "steps", "tokens", "seq", "mixture (token shares)", "LR phase"):
        table.add_column(column)
    for row in stage_rows(recipe):
        table.add_row(
            row["stage"],
            f"{row['steps'][0]:,} –\n{row['steps'][1]:,}",
            f"{_human(row['tokens'][0])} – {_human(row['tokens'][1])}",
            str(row["seq_len"]) + (f"\nθ {_human(row['rope_theta'])}" if row["rope_theta"] else ""),
            "\n".join(f"{s} {w * 100:.3g}%" for s, w in row["mixture"].items()),
            row["lr_phase"],
        )
    return table
