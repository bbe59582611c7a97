"""``smollab anneal RUN_DIR``: branch a run at a checkpoint and decay its LR on a new mixture.

SmolLM2 judged candidate math and code sets this way (paper §3, §4.6): from a stable-phase
checkpoint, train on "60% candidate + 40% of the mixture so far" while the LR decays linearly to
its final value, then evaluate; the candidate whose anneal scores best is kept. An anneal here is a
*child recipe* written from the parent's resolved recipe: one stage of ``--tokens`` tokens at the
sequence length and RoPE θ the parent had at that step, the same model, tokenizer, shards, held-out
split and evaluation (so children of one parent compare like with like), a schedule that starts
from the parent's LR at the step (``optim.lr``, no warmup) and decays linearly over the whole child
to the parent's final LR, and an ``anneal:`` section naming the parent run and step. The child is
then a normal run directory: resume, export, eval, ``smollab mixture`` work on it unchanged.

Trade-off: the mixture "x% candidate + the rest as the parent's" is resolved once, from the shares
in force at the branching step (a rule or ODM decision included), and written into the child's
recipe as plain numbers, so the child does not follow later decisions of the parent.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated

import typer

from smollab.console import table_console
from smollab.data.mixture import Schedule, plan_stages
from smollab.data.mixture_report import RESOLVED_RECIPE
from smollab.errors import SmollabError
from smollab.recipe import Recipe, parse_count, apply_overrides, load_recipe, validate_tree
from smollab.train import checkpoint
from smollab.train.schedule import WSD

PARENT = "parent"
"""The word that means "the parent run's mixture" in ``--mixture``, e.g. ``math=0.6,parent=0.4``."""


def parse_mixture(text: str) -> dict[str, float]:
    """``"math=0.6"`` or ``"math=0.3,code=0.3,parent=0.4"``: source shares, ``parent`` included as a name."""
    shares = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise SmollabError(f"--mixture: cannot read '{item}'; write source=share pairs, e.g. math=0.6 "
                               f"(the rest, or {PARENT}=x, is the parent run's mixture)")
    if not shares:
        raise SmollabError("--mixture is empty; write source=share pairs, e.g. math=0.6")
    return shares


def compose(candidate: dict[str, float], parent_shares: dict[str, float]) -> dict[str, float]:
    """The candidate's shares plus the parent's mixture scaled to what they leave (or to ``parent=x`` when given)."""
    candidate = dict(candidate)
    explicit = candidate.pop(PARENT, None)
    if any(share < 0 for share in candidate.values()) or (explicit is not None and explicit < 0):
        raise SmollabError(f"--mixture: shares must be ≥ 0 (got {candidate | ({PARENT: explicit} if explicit is not None else {})})")
    rest = 1.0 - sum(candidate.values()) if explicit is None else explicit
    if rest < -1e-9 or abs(sum(candidate.values()) + rest - 1.0) > 1e-6:
        raise SmollabError(f"--mixture: the shares {candidate} and {PARENT} {rest:g} do not add up to 1; "
                           "give candidate shares ≤ 1 (the rest is the parent's mixture)")
    mixture = dict(candidate)
    for source, share in parent_shares.items():
        mixture[source] = mixture.get(source, 0.0) + max(rest, 0.0) * share
    return {source: share for source, share in mixture.items() if share > 0}


def parent_recipe(run_dir: Path) -> Recipe:
    if not (run_dir / RESOLVED_RECIPE).is_file():
        raise SmollabError(f"{run_dir} has no {RESOLVED_RECIPE}; pass a run directory `smollab train` wrote")
    return load_recipe(run_dir / RESOLVED_RECIPE, [f"out={run_dir}"])


def branch_point(parent: Recipe, ckpt: Path) -> dict:
    """What the parent had in force when ``ckpt`` was written: step, LR, shares, seq_len and RoPE θ."""
    meta = checkpoint.read_meta(ckpt)
    step = meta["step"]
    plans = plan_stages(parent)
    schedule = Schedule.from_json(meta["schedule"], where=f"{ckpt}/meta.json") if "schedule" in meta else Schedule.static(plans)
    segment = schedule.segments[schedule.index_of_step(step - 1)]
    stage = plans[segment.stage]
    lr = WSD(parent.schedule, parent.optim.lr, plans[-1].end_step).lr(step)
    if lr <= parent.schedule.decay.to:
        raise SmollabError(f"anneal: at step {step} the parent's LR is already its final {parent.schedule.decay.to:g}, "
                           "so there is nothing to decay; branch from an earlier checkpoint (--step)")
    theta = next((p.rope_theta for p in reversed(plans[: stage.index + 1]) if p.rope_theta), None)
    return {"step": step, "lr": lr, "shares": {s: segment.weight(s) for s in segment.sources},
            "seq_len": stage.seq_len, "rope_theta": theta, "stage": stage.name}


def child_tree(parent: Recipe, point: dict, mixture: dict[str, float], tokens: int, *, name: str, out: Path,
               keep_optimizer: bool) -> dict:
    """The child recipe's YAML tree: the parent's, with one annealing stage and a decay from the parent's LR."""
    tree = copy.deepcopy(parent.model_dump(mode="json"))
    tree.update(name=name, out=str(out), curate=None)
    if parent.tokenizer.train is not None:  # the BPE the parent trained, as a plain tokenizer directory
        tree["tokenizer"] = {"source": str((parent.out_dir / "tokenizer").resolve()), "train": None}
    tree["data"]["shards_dir"] = str(parent.shards_dir.resolve())
    tree["stages"] = [{"name": "anneal", "until_tokens": tokens, "mixture": mixture, "seq_len": point["seq_len"],
                       "rope_theta": point["rope_theta"], "rebalance": None}]
    tree["optim"]["lr"] = point["lr"]
    tree["schedule"] = {"warmup_steps": 0, "decay": {"fraction": 1.0, "shape": "linear", "to": parent.schedule.decay.to}}
    every = parent.checkpoint.every_tokens
    tree["checkpoint"]["every_tokens"] = every if every and every < tokens else None
    if parent.eval.heldout is not None:  # every source either run trains on: children of one parent compare on one set
        trained = {name for stage in parent.stages for name in stage.mixture} | set(parent.eval.heldout.sources or [])
        tree["eval"]["heldout"]["sources"] = sorted(trained | set(mixture))
    tree["anneal"] = {"from_run": str(parent.out_dir.resolve()), "step": point["step"], "optimizer": keep_optimizer}
    return tree


def anneal_recipe(run_dir: Path, tokens: int | str, mixture: str, *, step: int | None = None, name: str | None = None,
                  out: Path | None = None, keep_optimizer: bool = True, overrides: list[str] | None = None) -> Recipe:
    """The validated child recipe of an anneal of ``run_dir`` at ``step`` (its newest checkpoint by default)."""
    count = parse_count(tokens)
    if not isinstance(count, int) or count <= 0:
        raise SmollabError(f"--tokens: cannot read '{tokens}' as a positive token count; write e.g. 1e5 or 60B")
    parent = parent_recipe(run_dir)
    ckpt = checkpoint.parent_checkpoint(run_dir, step)
    point = branch_point(parent, ckpt)
    candidate = parse_mixture(mixture)
    label = "+".join(sorted(s for s in candidate if s != PARENT))
    name = name or f"{parent.name}-anneal-{label}-step{point['step']}"
    tree = child_tree(parent, point, compose(candidate, point["shares"]), count, name=name,
                      out=out or run_dir.parent / name, keep_optimizer=keep_optimizer)
    return validate_tree(apply_overrides(tree, overrides or []), f"anneal of {run_dir}")


def anneal(
    run_dir: Annotated[Path, typer.Argument(help="the parent run directory")],
    tokens: Annotated[str, typer.Option(help="tokens to anneal for, e.g. 1e5 or 60B")],
    mixture: Annotated[str, typer.Option(help="candidate shares; the rest is the parent's mixture at the step, "
                                                 "e.g. math=0.6 (paper: 60% candidate + 40% previous mix)")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="dotted overrides of the child recipe, e.g. data.sources.owm.bundled=math_gsm8k_train")] = None,
    step: Annotated[int | None, typer.Option(help="the parent checkpoint's step (default: its newest)")] = None,
    out: Annotated[Path | None, typer.Option(help="the child run directory (default: beside the parent)")] = None,
    name: Annotated[str | None, typer.Option(help="the child run's name")] = None,
    fresh_optimizer: Annotated[bool, typer.Option(help="start from fresh AdamW moments instead of the parent's")] = False,
    resume: Annotated[bool, typer.Option(help="continue the child from its newest checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="start the child over")] = False,
    dry_run: Annotated[bool, typer.Option(help="print the child's plan; train nothing")] = False,
) -> None:
    """Anneal RUN_DIR from a checkpoint: LR decayed linearly from the parent's to its final LR on a new mixture.

    The child is a normal run directory whose recipe records its parent (anneal.from_run, anneal.step).

    Example: smollab anneal runs/demo --step 28 --tokens 1.6e5 --mixture math=0.6
    """
    from smollab.data.tokenize import tokenize_recipe
    from smollab.train.loop import train
    from smollab.train.plan import stage_table

    console = table_console(stderr=True)
    recipe = anneal_recipe(run_dir, tokens, mixture, step=step, name=name, out=out, keep_optimizer=not fresh_optimizer,
                           overrides=overrides)
    console.print(f"anneal of {recipe.anneal.from_run} at step {recipe.anneal.step}: LR {recipe.optim.lr:.3g} → "
                  f"{recipe.schedule.decay.to:g} over {recipe.total_tokens:,} tokens; child run {recipe.out_dir}",
                  soft_wrap=True, highlight=False)
    if dry_run:
        table_console().print(stage_table(recipe))
        return
    tokenize_recipe(recipe, workers=1, console=console)  # only sources the parent never tokenized cost anything
    result = train(recipe, resume=resume, overwrite=overwrite)
    console.print(f"final loss {result.final_loss:.4f}; HF model at {result.hf_dir}", soft_wrap=True, highlight=False)
