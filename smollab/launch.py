"""``smollab launch RECIPE``: the torchrun (one node) and Slurm (many nodes) scripts that train a recipe on GPUs.

The scripts are rendered from the recipe, not hand-written templates with placeholders: the job name
and log path come from the recipe's ``name`` and run directory, the node and GPU counts from the
arguments, and the rank count they make is checked against ``batch`` before anything is written. The
committed ``launch/torchrun.sh`` and ``launch/slurm.sbatch`` are two such renders (``COMMITTED``), kept
equal to a fresh one by ``tests/test_launch.py``. The price is that a rendered script is specific to
its recipe: ``#SBATCH`` lines cannot read the script's arguments, so a script given another recipe
still names the first one's job and log (render one for it, or pass ``sbatch --job-name/--output``).

Every start of a script first runs ``python -m smollab.launch preflight``, which validates the recipe
(with the overrides) and the rank count and decides how ``smollab train`` continues the run directory:
``--resume`` once it holds a checkpoint, so a requeued or resubmitted job continues it; nothing when it
holds no run (``train --resume`` refuses a directory without a checkpoint, so always passing it would
fail every first start); ``--overwrite`` when a run died before its first checkpoint (only its log is
lost, and those steps are redone) — the rule ``smollab ablate`` applies to its variants. The decision
is taken once per start, on one host, before any rank exists; torchrun is therefore never given
``--max_restarts`` (a restart would reuse a stale decision, and ``--overwrite`` deletes checkpoints).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from smollab.errors import SmollabError
from smollab.executors import SlurmConfig
from smollab.recipe import Recipe, load_recipe

REPO = Path(__file__).resolve().parents[1]
SCHEDULERS = ("torchrun", "slurm")
RDZV_PORT = 29500  # torchrun's default master port, on the head node
REQUEUE_WARNING_S = 300  # Slurm signals the batch shell this long before the time limit
TIME_LIMIT = SlurmConfig.model_fields["time"].default  # the Slurm default smollab's executors already use
COMMITTED_RECIPE = "recipes/smollm2-135m.yaml"
COMMITTED = {  # path in the repository → the arguments it is rendered with (from COMMITTED_RECIPE)
    "launch/torchrun.sh": {"scheduler": "torchrun", "nodes": 1, "gpus_per_node": 8},
    "launch/slurm.sbatch": {"scheduler": "slurm", "nodes": 2, "gpus_per_node": 8},
}


@dataclass(frozen=True)
class Layout:
    """Where the ranks run: ``nodes`` × ``gpus_per_node``, one rank per GPU."""

    scheduler: str
    nodes: int
    gpus_per_node: int
    time_limit: str = TIME_LIMIT

    @property
    def world(self) -> int:
        return self.nodes * self.gpus_per_node

    def check(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise SmollabError(f"--scheduler {self.scheduler}: use one of {', '.join(SCHEDULERS)}")
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise SmollabError(f"--nodes {self.nodes} --gpus-per-node {self.gpus_per_node}: both must be at least 1")
        if self.scheduler == "torchrun" and self.nodes != 1:
            raise SmollabError(f"--nodes {self.nodes}: the torchrun script runs on one node; "
                               "use --scheduler slurm for several")


def accumulation(recipe: Recipe, world: int) -> dict[str, int]:
    """Micro-batches per rank per optimizer step, by stage, at ``world`` ranks (what the loop will run)."""
    return {stage.name: recipe.batch.tokens_per_step // ((stage.seq_len or recipe.batch.seq_len)
                                                         * recipe.batch.micro_batch * world)
            for stage in recipe.stages}


def fitting_micro_batch(recipe: Recipe, world: int) -> int | None:
    """The largest ``batch.micro_batch`` up to the recipe's own for which every stage divides at ``world`` ranks."""
    seq_lens = {stage.seq_len or recipe.batch.seq_len for stage in recipe.stages}
    for micro in range(recipe.batch.micro_batch, 0, -1):
        if all(recipe.batch.tokens_per_step % (seq_len * micro * world) == 0 for seq_len in seq_lens):
            return micro
    return None


def check_world(recipe: Recipe, world: int) -> None:
    """Every stage's batch divides over ``world`` ranks: what ``smollab.train.loop.check_geometry`` checks at
    start-up and the launch scripts check before any GPU is allocated; the recipe's validation has already
    checked seq_len × micro_batch.

    One line naming the stage that does not divide and what would: a smaller micro-batch, else a multiple."""
    for stage in recipe.stages:
        seq_len = stage.seq_len or recipe.batch.seq_len
        per_pass = seq_len * recipe.batch.micro_batch * world
        if recipe.batch.tokens_per_step % per_pass:
            micro = fitting_micro_batch(recipe, world)
            fix = (f"set batch.micro_batch={micro}" if micro else
                   f"no micro_batch fits {world} ranks, so change the rank count or batch.tokens_per_step")
            raise SmollabError(
                f"batch.tokens_per_step: {recipe.batch.tokens_per_step:,} is not divisible by seq_len × micro_batch × ranks "
                f"= {seq_len} × {recipe.batch.micro_batch} × {world} (stage {stage.name}); {fix}, "
                f"or pick a multiple of {per_pass:,}")


def run_flag(recipe: Recipe) -> str:
    """How ``smollab train`` continues the run directory: ``--resume``, ``--overwrite`` or nothing.

    A run directory holds a run once it has ``log.jsonl`` or a ``checkpoints/step-N`` directory (the
    test ``train.loop.prepare_run_dir`` applies); a damaged checkpoint still means ``--resume``, which
    falls back to an older one or says in one line that none is readable."""
    out = recipe.out_dir
    checkpoints = out / "checkpoints"
    if checkpoints.is_dir() and any(re.fullmatch(r"step-\d+", p.name) for p in checkpoints.iterdir()):
        return "--resume"
    return "--overwrite" if (out / "log.jsonl").exists() else ""


def preflight(recipe_path: str, overrides: list[str], world: int) -> str:
    """What a launch script runs before torchrun: validate the recipe and rank count, return the run flag."""
    recipe = load_recipe(recipe_path, overrides)
    check_world(recipe, world)
    return run_flag(recipe)


def render(recipe_arg: str, recipe: Recipe, layout: Layout, overrides: list[str] | None = None,
           script: str = "SCRIPT") -> str:
    """The script for ``layout`` that trains ``recipe`` (read from ``recipe_arg``, the path the script defaults to).

    ``overrides`` are baked into the script, ahead of those its caller adds; ``script`` is the name its
    usage line calls it by."""
    layout.check()
    check_world(recipe, layout.world)
    overrides = overrides or []
    baked = '"${overrides[@]}" ' if overrides else ""
    again = " ".join(["smollab launch", shlex.quote(recipe_arg), *map(shlex.quote, overrides),
                      f"--scheduler {layout.scheduler} --nodes {layout.nodes} --gpus-per-node {layout.gpus_per_node}",
                      *([f"--time {layout.time_limit}"] if layout.scheduler == "slurm" else [])])
    body = [
        "set -euo pipefail",
        f"gpus_per_node={layout.gpus_per_node}",
        f"recipe=${{1:-{shlex.quote(recipe_arg)}}}",
        "if [ $# -gt 0 ]; then shift; fi",
        *([f"overrides=({' '.join(map(shlex.quote, overrides))})"] if overrides else []),
    ]
    usage = (f"#   bash {script} [RECIPE [key.path=value ...]]   (from the repository root, smollab's environment active)"
             if layout.scheduler == "torchrun" else
             f"#   mkdir -p {shlex.quote(str(recipe.out_dir))} && sbatch {script} [RECIPE [key.path=value ...]]   (from the repository root)")
    notes = [
        f"# RECIPE defaults to {recipe_arg}; the overrides are `smollab train`'s, e.g. optim.lr=3e-4.",
        "# Each start validates the recipe and the rank count (python -m smollab.launch preflight), then resumes the",
        "# run from its newest checkpoint, starts it if there is none, or restarts one that died before its first.",
        f"# Rendered by `{again}` (smollab/launch.py).",
    ]
    if layout.scheduler == "torchrun":
        head = [
            "#!/usr/bin/env bash",
            f"# Train {recipe.name} on this node's {layout.gpus_per_node} GPUs: torchrun starts {layout.world} ranks, "
            "FSDP2 shards the model over them.",
            usage, *notes,
        ]
        body += [
            f'run_flag=$(python -m smollab.launch preflight --world "$gpus_per_node" "$recipe" {baked}"$@")',
            'exec torchrun --standalone --nnodes 1 --nproc_per_node "$gpus_per_node" \\',
            f'  -m smollab train "$recipe" {baked}"$@" ${{run_flag:+"$run_flag"}}',
        ]
    else:
        head = [
            "#!/usr/bin/env bash",
            f"# Train {recipe.name} on {layout.nodes} nodes × {layout.gpus_per_node} GPUs under Slurm: one srun task per "
            "node runs torchrun, whose c10d",
            f"# rendezvous on the job's first node joins the {layout.world} ranks into one FSDP2 job. "
            "`sbatch --nodes=N` changes the node count.",
            usage, *notes,
            f"# Near the time limit the job requeues itself ({REQUEUE_WARNING_S} s ahead; a node failure requeues it too) "
            "and resumes;",
            "# progress since the newest checkpoint is redone, so keep checkpoint.every_tokens well inside the limit.",
            f"#SBATCH --job-name={recipe.name}",
            f"#SBATCH --nodes={layout.nodes}",
            "#SBATCH --ntasks-per-node=1",
            f"#SBATCH --gpus-per-node={layout.gpus_per_node}",
            f"#SBATCH --time={layout.time_limit}",
            f"#SBATCH --output={recipe.out_dir}/slurm-%j.out",
            "#SBATCH --open-mode=append",
            "#SBATCH --requeue",
            f"#SBATCH --signal=B:USR1@{REQUEUE_WARNING_S}",
        ]
        body += [
            "# pipefail off here: scontrol killed by SIGPIPE once head has its line is no failure",
            'head_node=$(set +o pipefail; scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)',
            f'run_flag=$(python -m smollab.launch preflight --world $((SLURM_NNODES * gpus_per_node)) "$recipe" {baked}"$@")',
            'trap \'scontrol requeue "$SLURM_JOB_ID"\' USR1',
            'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \\',
            '  torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "$gpus_per_node" \\',
            f'  --rdzv_backend c10d --rdzv_endpoint "$head_node:{RDZV_PORT}" --rdzv_id "$SLURM_JOB_ID" \\',
            f'  -m smollab train "$recipe" {baked}"$@" ${{run_flag:+"$run_flag"}} &',
            "wait $!",
        ]
    return "\n".join(head + body) + "\n"


def render_committed(path: str, root: Path = REPO) -> str:
    """What the committed file at ``path`` (a key of ``COMMITTED``) should hold."""
    layout = Layout(**COMMITTED[path])
    return render(COMMITTED_RECIPE, load_recipe(root / COMMITTED_RECIPE), layout, script=path)


def stale_committed(root: Path = REPO) -> list[str]:
    """The committed launch scripts that are missing or differ from a fresh render."""
    return [path for path in COMMITTED
            if not (root / path).is_file() or (root / path).read_text() != render_committed(path, root)]


def write_committed(root: Path = REPO) -> list[Path]:
    """Render every committed launch script again (``python -m smollab.launch regenerate``)."""
    written = []
    for path in COMMITTED:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_committed(path, root))
        target.chmod(0o755)
        written.append(target)
    return written


def launch(
    recipe: Annotated[str, typer.Argument(help="recipe YAML the script trains (its default RECIPE argument)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides baked into the script, "
                                                               "e.g. batch.micro_batch=2")] = None,
    nodes: Annotated[int, typer.Option(min=1, help="nodes (slurm; torchrun is one node)")] = 1,
    gpus_per_node: Annotated[int, typer.Option(min=1, help="GPUs per node: one rank each")] = 8,
    scheduler: Annotated[str, typer.Option(help="torchrun (one node) or slurm (sbatch, torchrun on every node)")] = "torchrun",
    time_limit: Annotated[str, typer.Option("--time", help="slurm: the job's time limit; it requeues itself "
                                                           "before it and resumes")] = TIME_LIMIT,
    write: Annotated[Path | None, typer.Option(help="write the script here (executable) instead of printing it")] = None,
) -> None:
    """Render the script that trains RECIPE on GPUs (torchrun on one node, or a Slurm job over several), after
    checking that batch.tokens_per_step divides by seq_len × micro_batch × nodes × GPUs in every stage.

    Example: smollab launch recipes/smollm2-1.7b.yaml batch.micro_batch=1 --scheduler slurm --nodes 32 --write 1.7b.sbatch
    """
    layout = Layout(scheduler, nodes, gpus_per_node, time_limit)
    layout.check()
    loaded = load_recipe(recipe, overrides or [])
    if write is None:
        sys.stdout.write(render(recipe, loaded, layout, overrides))
        return
    write.parent.mkdir(parents=True, exist_ok=True)
    write.write_text(render(recipe, loaded, layout, overrides, script=str(write)))
    write.chmod(0o755)
    steps = ", ".join(f"{name} {n}" for name, n in accumulation(loaded, layout.world).items())
    run = f"bash {write}" if scheduler == "torchrun" else f"mkdir -p {loaded.out_dir} && sbatch {write}"
    print(f"wrote {write}: {layout.world} ranks, micro-batches per rank per step: {steps}; run it with: {run}",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """``python -m smollab.launch preflight --world N RECIPE [overrides]`` (what the scripts run) or ``regenerate``."""
    parser = argparse.ArgumentParser(prog="python -m smollab.launch", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("preflight", help="validate a recipe for N ranks; print --resume, --overwrite or nothing")
    check.add_argument("--world", type=int, required=True, help="ranks the job will run")
    check.add_argument("recipe")
    check.add_argument("overrides", nargs="*")
    commands.add_parser("regenerate", help=f"render {' and '.join(COMMITTED)} again")
    args = parser.parse_args(argv)
    try:
        if args.command == "preflight":
            print(preflight(args.recipe, args.overrides, args.world))
        else:
            for path in write_committed():
                print(f"wrote {path}", file=sys.stderr)
    except SmollabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
