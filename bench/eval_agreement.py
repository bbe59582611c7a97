"""Item-level agreement of smollab's evaluator with lm-evaluation-harness on the same items.

Measures: for the first N items of hellaswag, arc_easy, arc_challenge and piqa, the predicted
choice (raw ``acc`` and length-normalised ``acc_norm``, both with lm-eval's normalisation so the
rule is identical) from smollab and from lm-eval 0.4.13's HF backend, and the largest difference
of the per-choice log-likelihoods. Both harnesses get the same prompts: smollab's task prompts
are written out as a JSON-lines file per task with an lm-eval task YAML over it.
Run:  .venv/bin/python bench/eval_agreement.py --limit 200 [--model smollm2-135m-instruct]
      (``--smollab-samples FILE`` reuses the per-item log-likelihoods of an earlier
      ``smollab eval ... --log-samples FILE`` run on the same model instead of scoring again)
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from smollab import pretrained
from smollab.eval.evaluate import select_rows
from smollab.eval.harness import SmolLM
from smollab.eval.metrics import argmax
from smollab.eval.tasks import TASKS

TASK_NAMES = ["hellaswag", "arc_easy", "arc_challenge", "piqa"]


def write_lm_eval_tasks(names: list[str], limit: int, folder: Path) -> dict[str, list[dict]]:
    """One JSON-lines file + lm-eval YAML per task, holding smollab's exact context and choices."""
    items = {}
    for name in names:
        task = TASKS[name]
        rows = []
        for row in select_rows(task, limit=limit):
            item = task.prompt(row)
            rows.append({"id": row["id"], "query": item.contexts[0], "choices": item.continuations, "gold": item.gold})
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / f"{name}.yaml").write_text(
            f"task: agree_{name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / name}.jsonl\n"
            "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{query}}\"\n"
            "doc_to_choice: \"{{choices}}\"\ndoc_to_target: gold\ntarget_delimiter: \"\"\n"
            "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
        items[name] = rows
    return items


def hf_backend(model_dir: str, batch_size: int):
    """lm-eval's own HF backend (``HFLM``), fp32 on CPU, at the given batch size."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model_dir, batch_size=batch_size, dtype="float32", device="cpu")


def run_lm_eval(model, names: list[str], folder: Path) -> dict[str, dict[str, list]]:
    """lm-eval's ``simple_evaluate`` with an lm-eval ``LM``: per task, id -> per-choice log-likelihoods."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(folder), include_defaults=False)
    out = simple_evaluate(model=model, tasks=[f"agree_{n}" for n in names], task_manager=manager, log_samples=True)
    return {n: {s["doc"]["id"]: [float(r[0]) for r in s["filtered_resps"]] for s in out["samples"][f"agree_{n}"]}
            for n in names}


def run_smollab(lm: SmolLM, items: dict[str, list[dict]]) -> dict[str, dict[str, list]]:
    out = {}
    for name, rows in items.items():
        logliks = iter(lm.loglikelihood([(r["query"], c) for r in rows for c in r["choices"]]))
        out[name] = {r["id"]: [next(logliks)[0] for _ in r["choices"]] for r in rows}
    return out


def load_smollab_samples(path: Path, items: dict[str, list[dict]]) -> dict[str, dict[str, list]]:
    """Per-choice log-likelihoods from a ``--log-samples`` file, for exactly the items compared here."""
    logged = {}
    for line in path.read_text().splitlines():
        s = json.loads(line)
        logged[(s["task"], s["id"])] = s["logliks"]
    missing = [r["id"] for n, rows in items.items() for r in rows if (n, r["id"]) not in logged]
    if missing:
        raise SystemExit(f"{path} lacks {len(missing)} of the compared items (first: {missing[0]}); rerun without it.")
    return {n: {r["id"]: logged[(n, r["id"])] for r in rows} for n, rows in items.items()}


def predictions(logliks: list[float], choices: list[str]) -> tuple[int, int]:
    """(acc, acc_norm) predictions under lm-eval's rules (normalised by the choice's character length)."""
    return argmax(logliks), argmax([ll / len(c) for ll, c in zip(logliks, choices)])


def compare(items, ours, theirs) -> dict:
    report = {}
    for name, rows in items.items():
        agree_acc = agree_norm = 0
        max_delta, disagreements = 0.0, []
        for r in rows:
            a, b = ours[name][r["id"]], theirs[name][r["id"]]
            max_delta = max(max_delta, max(abs(x - y) for x, y in zip(a, b)))
            pa, pb = predictions(a, r["choices"]), predictions(b, r["choices"])
            agree_acc += pa[0] == pb[0]
            agree_norm += pa[1] == pb[1]
            if pa != pb:
                top2 = sorted(b, reverse=True)[:2]
                disagreements.append({"id": r["id"], "smollab": a, "lm_eval": b, "lm_eval_margin": top2[0] - top2[1]})
        report[name] = {"items": len(rows), "agree_acc": agree_acc / len(rows), "agree_acc_norm": agree_norm / len(rows),
                        "max_abs_loglik_delta": max_delta, "disagreements": disagreements}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--smollab-samples", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/eval_agreement.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.tasks.split(",")
    model_dir = pretrained.resolve(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        items = write_lm_eval_tasks(names, args.limit, Path(tmp))
        t0 = time.perf_counter()
        theirs = run_lm_eval(hf_backend(model_dir, args.batch_size), names, Path(tmp))
        t1 = time.perf_counter()
        reuse = args.smollab_samples is not None and args.smollab_samples.exists()
        if reuse:
            ours = load_smollab_samples(args.smollab_samples, items)
        else:
            ours = run_smollab(SmolLM.load(model_dir, batch_size=args.batch_size), items)
        t2 = time.perf_counter()
    report = {"model": args.model, "limit": args.limit, "batch_size": args.batch_size, "threads": args.threads,
              "seconds": {"lm_eval_hf": t1 - t0, "smollab": None if reuse else t2 - t1},
              "smollab_from_samples": str(args.smollab_samples) if reuse else None,
              "tasks": compare(items, ours, theirs)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in report["tasks"].items():
        print(f"{name:14s} items={r['items']:4d} agree(acc)={100 * r['agree_acc']:.1f}% "
              f"agree(acc_norm)={100 * r['agree_acc_norm']:.1f}% max|Δll|={r['max_abs_loglik_delta']:.2e} "
              f"disagreements={len(r['disagreements'])}")


if __name__ == "__main__":
    main()
