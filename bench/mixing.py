"""Online data mixing vs the demo's static mixture, and what held-out evaluation costs the demo.

For each seed, two runs of the embedded demo recipe, interleaved (static, then ODM), each in a fresh
process, from one shared tokenizer and one set of shards: the static mixture (``rebalance`` off in
every stage), and ``policy: odm`` in every stage (``--every-steps``). Both evaluate the held-out loss
per source (``eval.heldout.tokens``) at a checkpoint every ``--eval-every`` steps. Reported per seed:
the final mean held-out loss of each (mean over sources), and the tokens the ODM run needed to reach
the static run's final mean held-out loss, by linear interpolation between evaluations (None when it
never did), as a fraction of the static run's tokens. The issue's goal is ≤ 0.85.
Overhead: the demo recipe as shipped (its checkpoints only) with and without ``eval.heldout``, pairs
interleaved; the wall-time difference over the training time, and the held-out evaluations' own
seconds from ``evals.jsonl``. Token counts do not depend on the machine's load; times do, so compare
the overhead only within one invocation.

    .venv/bin/python bench/mixing.py --seeds 3 --out bench/mixing.json
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def smollab(*args: str) -> float:
    """Run the CLI in a fresh process; returns its wall time."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "smollab", *args], cwd=REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def shared_inputs(work: Path, recipe: str) -> list[str]:
    """Tokenizer and shards once; every run reads them."""
    smollab("tokenize", recipe, "--out", str(work / "base"), "--workers", "2")
    return [f"tokenizer.source={work / 'base' / 'tokenizer'}", "tokenizer.train=null",
            f"data.shards_dir={work / 'base' / 'shards'}"]


def curve(run: Path) -> list[tuple[int, float]]:
    """(tokens, mean held-out loss over sources) at each evaluation."""
    lines = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    return [(line["tokens"], statistics.fmean(line["heldout"].values())) for line in lines]


def tokens_to_reach(points: list[tuple[int, float]], target: float) -> float | None:
    previous = (0, float("inf"))
    for tokens, loss in points:
        if loss <= target:
            t0, l0 = previous
            return tokens if l0 == float("inf") else t0 + (tokens - t0) * (l0 - target) / (l0 - loss)
        previous = (tokens, loss)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--every-steps", type=int, default=2, help="ODM: steps per bandit round")
    parser.add_argument("--eval-every", type=int, default=2, help="steps between held-out evaluations")
    parser.add_argument("--heldout-tokens", type=int, default=1028)
    parser.add_argument("--overhead-pairs", type=int, default=2)
    parser.add_argument("--recipe", type=Path, default=None, help="default: the demo recipe")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from smollab.demo import DEMO_RECIPE
    from smollab.recipe import load_recipe

    work = Path(tempfile.mkdtemp(prefix="smollab-mixing-"))
    recipe = str(work / "recipe.yaml")  # a copy: every run of the invocation reads the same recipe
    Path(recipe).write_text((args.recipe or DEMO_RECIPE).read_text())
    stages = len(load_recipe(recipe).stages)
    tokens_per_step = load_recipe(recipe).batch.tokens_per_step
    inputs = shared_inputs(work, recipe)
    measured = [f"eval.heldout.tokens={args.heldout_tokens}", f"checkpoint.every_tokens={args.eval_every * tokens_per_step}",
                "checkpoint.keep=1"]
    static = [f"stages.{i}.rebalance=null" for i in range(stages)]
    odm = [f"stages.{i}.rebalance={{policy: odm, every_steps: {args.every_steps}}}" for i in range(stages)]
    results = {"seeds": [], "config": vars(args) | {"out": str(args.out)}}
    for seed in range(args.seeds):
        row = {"seed": seed}
        for name, policy in (("static", static), ("odm", odm)):
            run = work / f"{name}-{seed}"
            row[f"{name}_seconds"] = smollab("train", recipe, "--out", str(run), f"train.seed={seed}", *inputs, *measured, *policy)
            row[f"{name}_curve"] = curve(run)
        target = row["static_curve"][-1][1]
        reached = tokens_to_reach(row["odm_curve"], target)
        row |= {"static_final": target, "odm_final": row["odm_curve"][-1][1], "odm_tokens_to_static_final": reached,
                "ratio": None if reached is None else reached / row["static_curve"][-1][0]}
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("curve")}), flush=True)
        results["seeds"].append(row)
    overhead = []
    for pair in range(args.overhead_pairs):
        plain = smollab("train", recipe, "--out", str(work / f"plain-{pair}"), *inputs, *static, "eval.heldout=null")
        run = work / f"heldout-{pair}"
        evaluated = smollab("train", recipe, "--out", str(run), *inputs, *static, f"eval.heldout.tokens={args.heldout_tokens}")
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        training = sum(tokens_per_step / r["tok_s"] for r in log)
        eval_seconds = sum(json.loads(line)["seconds"] for line in (run / "evals.jsonl").read_text().splitlines())
        overhead.append({"plain_wall": plain, "heldout_wall": evaluated, "training_seconds": training,
                         "heldout_eval_seconds": eval_seconds, "eval_share_of_training": eval_seconds / training,
                         "wall_difference_share": (evaluated - plain) / training})
        print(json.dumps(overhead[-1]), flush=True)
    results["overhead"] = overhead
    ratios = [row["ratio"] for row in results["seeds"] if row["ratio"] is not None]
    results["summary"] = {
        "median_ratio": statistics.median(ratios) if ratios else None,
        "reached": f"{len(ratios)}/{args.seeds}",
        "static_final_median": statistics.median(r["static_final"] for r in results["seeds"]),
        "odm_final_median": statistics.median(r["odm_final"] for r in results["seeds"]),
        "eval_share_median": statistics.median(o["eval_share_of_training"] for o in overhead) if overhead else None,
    }
    print(json.dumps(results["summary"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
