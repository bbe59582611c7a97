"""Which math set to keep? Two candidates annealed from one checkpoint of the demo, as SmolLM2 chose its math data.

SmolLM2 judged candidate datasets by annealing a stable-phase checkpoint on "60% candidate + 40% of the
mixture so far" with the LR decayed linearly to 0, then comparing the results (paper §3, §4.6). Here:
the embedded demo recipe is trained once (the parent; every checkpoint kept), then ``smollab anneal``
branches its stable-phase checkpoint three times for the same number of tokens: a control on the
parent's own mixture, GSM8K (the demo's ``math`` source) at 60%, and competition math (MATH problems
with solutions, the bundled curation sample) at 60%. All children are scored on the same held-out
slices of every source (``eval.heldout.sources``), so the table reads: what each candidate buys on
math, and what it costs elsewhere, against the control. Losses do not depend on the machine's load
(deterministic kernels); the seconds do.

    .venv/bin/python bench/anneal_candidates.py --out bench/anneal_candidates.json
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
COMPETITION = REPO / "smollab" / "assets" / "curate" / "math_competition_train_sample.jsonl.gz"
CANDIDATES = {"control": "parent=1", "gsm8k": "math=0.6", "competition_math": "competition_math=0.6"}


def smollab(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "smollab", *args], cwd=REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def final_heldout(run: Path) -> dict[str, float]:
    return json.loads((run / "evals.jsonl").read_text().splitlines()[-1])["heldout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=25, help="the parent checkpoint to branch (the demo's stable phase)")
    parser.add_argument("--tokens", default="163840", help="tokens per anneal (10 demo steps)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from smollab.demo import DEMO_RECIPE

    work = Path(tempfile.mkdtemp(prefix="smollab-anneal-"))
    parent = work / "parent"
    smollab("tokenize", str(DEMO_RECIPE), "--out", str(parent), "--workers", "2")
    seconds = {"parent": smollab("train", str(DEMO_RECIPE), "--out", str(parent), "checkpoint.keep=8")}
    sources = ["web", "news", "edu", "wiki", "code", "math", "competition_math"]
    declare = [f"data.sources.competition_math.files=[{COMPETITION}]",
               'data.sources.competition_math.template="Problem: {problem}\\nSolution: {solution}"',
               f"eval.heldout.sources=[{', '.join(sources)}]"]
    rows = {}
    for name, mixture in CANDIDATES.items():
        child = work / name
        seconds[name] = smollab("anneal", str(parent), "--step", str(args.step), "--tokens", args.tokens,
                                "--mixture", mixture, "--out", str(child), *declare)
        rows[name] = final_heldout(child)
        print(name, json.dumps(rows[name]), flush=True)
    control = rows["control"]
    table = {name: {"heldout": losses, "mean": statistics.fmean(losses.values()),
                    "vs_control": {s: losses[s] - control[s] for s in losses}} for name, losses in rows.items()}
    results = {"config": vars(args) | {"out": str(args.out)}, "candidates": CANDIDATES, "table": table, "seconds": seconds}
    print("| anneal | " + " | ".join(sources) + " | mean |")
    for name, row in table.items():
        cells = [f"{row['heldout'][s]:.3f}" + ("" if name == "control" else f" ({row['vs_control'][s]:+.3f})") for s in sources]
        print(f"| {name} | " + " | ".join(cells) + f" | {row['mean']:.3f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
