"""Training on one CPU machine: 1 process with 2 threads vs 2 gloo processes with 1 thread each (torchrun).

Same model, data, batch and steps as ``bench/train_throughput.py`` (the demo's tiny model at seq 256, 16,384
tokens per step, bf16 where native): the global batch is identical, so the two runs do the same arithmetic and
differ only in how it is spread. Reported per layout: steady-state tokens/s (median over steps after
``--skip``, then over ``--runs`` interleaved runs, each a fresh ``smollab train``), the data path's share of a
step (``data_s`` in log.jsonl), and from one profiled run the share of rank 0's step spent in collectives
(``train.profile``'s ``communication`` bucket: FSDP2's all-gathers and reduce-scatters plus the step's loss
all-reduce, with the time spent waiting on them).

    .venv/bin/python bench/cpu_ranks.py --runs 3 --steps 10 --skip 4
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from train_throughput import GEOMETRY, PROFILED_STEPS, bench_stages, prepare  # noqa: E402

TOKENS_PER_STEP = 16384  # GEOMETRY's batch.tokens_per_step
LAYOUTS = {"1 process × 2 threads": (1, 2), "2 gloo processes × 1 thread": (2, 1)}


def overrides(work: Path, run: str, steps: int, profile_from: int | None) -> list[str]:
    items = [f"out={work / run}", bench_stages(steps), "train.precision=auto", "train.compile=true", "train.device=cpu", *GEOMETRY]
    if profile_from is not None:
        items += [f"train.profile.start_step={profile_from}", f"train.profile.steps={PROFILED_STEPS}"]
    return items


def train(work: Path, run: str, ranks: int, threads: int, steps: int, profile_from: int | None = None) -> Path:
    """One fresh ``smollab train`` (under ``torchrun`` for 2 ranks) → its run directory, which shares the
    tokenizer and shards ``prepare`` wrote (``--overwrite`` keeps both)."""
    run_dir = work / run
    run_dir.mkdir(exist_ok=True)
    for shared in ("shards", "tokenizer"):
        if not (run_dir / shared).exists():
            (run_dir / shared).symlink_to(work / shared)
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                     "--nproc_per_node", str(ranks), "--master_port", "29561"]
    cmd = [*launcher, "-m", "smollab", "train", str(REPO / "recipes" / "demo.yaml"), "--overwrite",
           *overrides(work, run, steps, profile_from)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode:
        raise SystemExit(f"{run} failed:\n{result.stderr[-4000:]}")
    return run_dir


def steady(run_dir: Path, skip: int) -> tuple[float, float]:
    """Median tokens/s and median data-path share of a step over the steps after ``skip``."""
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()][skip:]
    tok_s = statistics.median(line["tok_s"] for line in lines)
    share = statistics.median(line["data_s"] * line["tok_s"] / TOKENS_PER_STEP for line in lines)
    return tok_s, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--skip", type=int, default=4, help="warm-up steps excluded (compilation)")
    parser.add_argument("--work", default="/tmp/smollab-bench-ranks")
    parser.add_argument("--out", default=str(REPO / "bench" / "cpu_ranks.json"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prepare(work)
    runs = {name: [] for name in LAYOUTS}
    for _ in range(args.runs):  # interleaved, so both layouts see the same background load
        for name, (ranks, threads) in LAYOUTS.items():
            runs[name].append(steady(train(work, f"r{ranks}", ranks, threads, args.steps), args.skip))
    profiles = {}
    for name, (ranks, threads) in LAYOUTS.items():
        run_dir = train(work, f"p{ranks}", ranks, threads, args.skip + PROFILED_STEPS, profile_from=args.skip)
        profiles[name] = json.loads((run_dir / "profile" / "summary-rank0.json").read_text())
    report = {"runs": args.runs, "steps": args.steps, "skip": args.skip, "cpu": _cpu_model(), "layouts": {}}
    print("| layout | tok/s per run | median tok/s | vs 1 process | data path share | communication share (rank 0) |")
    print("|---|---|---:|---:|---:|---:|")
    base = statistics.median(tok for tok, _ in runs["1 process × 2 threads"])
    for name, measured in runs.items():
        tok_s = statistics.median(tok for tok, _ in measured)
        share = statistics.median(s for _, s in measured)
        comm = profiles[name]["communication"] / profiles[name]["wall_s"]
        report["layouts"][name] = {"tok_s_runs": [tok for tok, _ in measured], "tok_s": tok_s, "ratio": tok_s / base,
                                   "data_share": share, "communication_share": comm, "profile": profiles[name]}
        print(f"| {name} | {' / '.join(f'{tok:,.0f}' for tok, _ in measured)} | {tok_s:,.0f} | {tok_s / base:.2f}× | "
              f"{share:.2%} | {comm:.1%} |")
    Path(args.out).write_text(json.dumps(report, indent=1))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return os.uname().machine


if __name__ == "__main__":
    main()
