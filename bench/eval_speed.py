"""Throughput (items/s) of smollab's evaluator vs lm-evaluation-harness's HF backend, same items.

Peer: lm-eval 0.4.13 ``HFLM`` (its documented HF backend) with the same model, dtype (fp32), batch
size and torch thread count, run in this same process, alternating with smollab, median of
``--repeats`` runs. Items are the first N of each task, with identical prompts on both sides (the
lm-eval task YAMLs come from bench/eval_agreement.py). Also times smollab's adapter driven by
lm-eval (``--harness lm-eval``) to separate adapter speed from harness overhead.
Run:  .venv/bin/python bench/eval_speed.py --limit 40 --repeats 3 --threads 2
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from eval_agreement import TASK_NAMES, hf_backend, run_lm_eval, run_smollab, write_lm_eval_tasks

from smollab import pretrained
from smollab.eval.harness import SmolLM
from smollab.eval.lm_eval_bridge import SmolLMForLMEval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/eval_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.tasks.split(",")
    model_dir = pretrained.resolve(args.model)
    lm = SmolLM.load(model_dir, batch_size=args.batch_size)
    peers = {"lm_eval_hf": hf_backend(model_dir, args.batch_size), "smollab_adapter_in_lm_eval": SmolLMForLMEval(lm)}
    times = {"smollab": [], **{name: [] for name in peers}}
    with tempfile.TemporaryDirectory() as tmp:
        items = write_lm_eval_tasks(names, args.limit, Path(tmp))
        n = sum(len(rows) for rows in items.values())
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run_smollab(lm, items)
            times["smollab"].append(time.perf_counter() - t0)
            for name, peer in peers.items():
                t0 = time.perf_counter()
                run_lm_eval(peer, names, Path(tmp))
                times[name].append(time.perf_counter() - t0)
            print("run", {k: round(v[-1], 1) for k, v in times.items()}, flush=True)
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    report = {"model": args.model, "items": n, "tasks": names, "batch_size": args.batch_size, "threads": args.threads,
              "seconds": times, "items_per_s": rate, "speedup": rate["smollab"] / rate["lm_eval_hf"]}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
