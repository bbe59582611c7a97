"""RegMix on the demo's sources: search with K proxies, then check the predicted mixture against the hand-set one.

1. ``smollab ablate recipes/sweeps/demo-regmix.yaml --regmix K``: K one-stage demo proxies on
   mixtures drawn around the hand-set mixture, the fit (its cross-validated R² and Spearman) and
   the predicted best mixture (``regmix.json``).
2. A verification sweep at the same budget: the predicted mixture and the hand-set one, 3 seeds
   each (seeds the proxies never used). The issue's goal: the predicted mixture's mean held-out
   loss is lower than the hand-set one's by more than the seeds' spread (here: the larger of the two
   configurations' ranges over seeds). Losses do not depend on the machine's load; wall times do.

    .venv/bin/python bench/regmix_demo.py --proxies 24 --out bench/regmix_demo.json
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "recipes" / "sweeps" / "demo-regmix.yaml"


def ablate(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "smollab", "ablate", *args], cwd=REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def mean_heldout(run: Path) -> float:
    return statistics.fmean(json.loads((run / "evals.jsonl").read_text().splitlines()[-1])["heldout"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smollab-regmix-"))
    seconds = {"search": ablate(str(SWEEP), "--regmix", str(args.proxies), "--out", str(work / "search"))}
    search = json.loads((work / "search" / "regmix.json").read_text())
    print(json.dumps({k: v for k, v in search.items() if k not in ("proxies",)}, default=str)[:2000], flush=True)

    sweep = yaml.safe_load(SWEEP.read_text())
    hand_set = yaml.safe_load(sweep["overrides"][0].split("=", 1)[1])[0]["mixture"]
    predicted = search["prediction"]["mixture"]
    sweep.update(name="demo-regmix-verify", out=str(work / "verify"), base="demo", regmix=None, axes=[
        {"field": "stages.0.mixture", "values": [predicted, hand_set], "names": ["regmix", "hand-set"]},
        {"field": "train.seed", "values": args.seeds}])
    (work / "verify.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    seconds["verify"] = ablate(str(work / "verify.yaml"))
    plan = json.loads((work / "verify" / "sweep.json").read_text())
    losses = {"regmix": [], "hand-set": []}
    for variant in plan["variants"]:
        losses[variant["config"]].append(mean_heldout(work / "verify" / variant["name"]))
    spread = max(max(v) - min(v) for v in losses.values())
    gain = statistics.fmean(losses["hand-set"]) - statistics.fmean(losses["regmix"])
    results = {"config": vars(args) | {"out": str(args.out)}, "fit": search["fit"], "prediction": search["prediction"],
               "hand_set": hand_set, "losses": losses, "gain": gain, "spread": spread, "goal_met": gain > spread,
               "seconds": seconds, "work": str(work)}
    print(json.dumps({k: results[k] for k in ("losses", "gain", "spread", "goal_met", "seconds")}))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
