"""Run tasks on a model: requests in, per-item scores out, then means, standard errors and logs.

All items of a task go to the adapter in one call, so batching spans items and the adapter's
length sorting and context sharing see the whole task. Per-item records (``--log-samples``) keep
the raw summed log-likelihood of every choice, which is what lets bench/eval_agreement.py compare
us item by item with lm-eval. Tasks that run generated code (``CodeTask``) are checked against
the sandbox's isolation before any model call, so a refusal never follows hours of generation.
The generated passkey task is first fitted to the adapter's ``max_length`` (longer lengths are
skipped and named in its result), then its prompts are built in the adapter's own tokens.
MT-Bench answers two turns, then an LLM judge grades them; without a judge it is skipped (one line,
no metrics) before any generation.
``run_in_loop`` is the training loop's entry point: it evaluates an in-memory model and restores
its mode and every RNG, so training continues bit for bit.
"""

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import torch

from smollab.console import table_console
from smollab.errors import SmollabError
from smollab.eval.harness import GenerationRequest, SmolLM
from smollab.eval.heldout import heldout_loss
from smollab.eval.metrics import choice_predictions, mean_stderr
from smollab.eval.sandbox import check_isolation
from smollab.eval.tasks import expand
from smollab.eval.tasks.base import CodeTask, GenerativeTask, LastWordTask, MultipleChoiceTask, Task, file_sha256
from smollab.eval.tasks.mt_bench import JUDGEMENTS, NO_JUDGE, MTBenchTask, configured_judge, conversation
from smollab.eval.tasks.passkey import PasskeyTask
from smollab.llm import HttpClient, RequestCache
from smollab.paths import cache_dir
from smollab.recipe import JudgeConfig


def select_rows(task: Task, *, limit: int | None = None, sample: int | None = None, seed: int = 0) -> list[dict]:
    """The first ``limit`` rows in file order (as lm-eval and lighteval do) or a seeded random ``sample``."""
    rows = task.docs()
    if sample is not None:
        picked = sorted(random.Random(f"{seed}/{task.name}").sample(range(len(rows)), min(sample, len(rows))))
        return [rows[i] for i in picked]
    return rows[:limit] if limit is not None else rows


def _multiple_choice(lm: SmolLM, task: MultipleChoiceTask, rows: list[dict]):
    items = [task.prompt(row) for row in rows]
    requests = [(lm.format(c), x) for item in items for c, x in zip(item.contexts, item.continuations)]
    results = iter(lm.loglikelihood(requests))
    scores, samples = {m: [] for m in task.metrics}, []
    for row, item in zip(rows, items):
        logliks = [next(results)[0] for _ in item.continuations]
        preds = choice_predictions(logliks, item.continuations)
        for metric in task.metrics:
            scores[metric].append(float(preds[metric] == item.gold))
        samples.append({"task": task.name, "id": row["id"], "logliks": logliks, "pred": preds["acc_norm"],
                        "pred_acc": preds["acc"], "gold": item.gold})
    return scores, samples


def _last_word(lm: SmolLM, task: LastWordTask, rows: list[dict]):
    pairs = [task.prompt(row) for row in rows]
    results = lm.loglikelihood([(lm.format(c), x) for c, x in pairs])
    samples = [{"task": task.name, "id": row["id"], "logliks": [ll], "pred": greedy, "gold": x.strip()}
               for row, (_, x), (ll, greedy) in zip(rows, pairs, results)]
    return {"acc": [float(g) for _, g in results], "loglik": [ll for ll, _ in results]}, samples


def _passkey(lm: SmolLM, task: PasskeyTask, rows: list[dict]):
    """Overall ``acc`` and ``acc@{length}@{depth}`` per cell: is the whole key the greedy continuation."""

    def count_tokens(context: str, answer: str) -> int:
        return sum(map(len, lm.encode_pair(lm.format(context), answer)))

    pairs = [task.prompt(row, count_tokens) for row in rows]
    results = lm.loglikelihood([(lm.format(c), x) for c, x in pairs])
    cells: dict[tuple[int, int], list[float]] = {}
    for row, (_, greedy) in zip(rows, results):
        cells.setdefault((row["length"], row["depth"]), []).append(float(greedy))
    scores = {"acc": [float(g) for _, g in results]}
    scores.update({f"acc@{length}@{depth}": cells[length, depth] for length, depth in sorted(cells)})
    samples = [{"task": task.name, "id": row["id"], "logliks": [ll], "pred": greedy, "gold": row["key"],
                "length": row["length"], "depth": row["depth"]}
               for row, (ll, greedy) in zip(rows, results)]
    return scores, samples


def _generative(lm: SmolLM, task: GenerativeTask, rows: list[dict], score):
    requests = [GenerationRequest(lm.format(task.prompt(row)), task.until, task.max_new_tokens) for row in rows]
    generations = lm.generate_until(requests)
    scored = score(rows, generations)
    scores: dict[str, list[float]] = {}
    samples = []
    for row, text, s in zip(rows, generations, scored):
        for metric, value in s.metrics.items():
            scores.setdefault(metric, []).extend(value if isinstance(value, list) else [value])
        samples.append({"task": task.name, "id": row["id"], "generation": text, "pred": s.pred, "gold": s.gold,
                        "metrics": s.metrics})
    return scores, samples


def _mt_bench(lm: SmolLM, task: MTBenchTask, rows: list[dict], judge: JudgeConfig, out_dir: Path | None):
    """Both turns answered greedily in the chat template (turn 2 after the model's own turn 1), then judged;
    judgements are cached in ``out_dir`` (default: the user cache)."""
    answers: list[list[str]] = [[] for _ in rows]
    for _ in range(2):
        requests = [GenerationRequest(lm.format_chat(conversation(row, previous)), (), task.max_new_tokens)
                    for row, previous in zip(rows, answers)]
        for previous, text in zip(answers, lm.generate_until(requests)):
            previous.append(text.strip())
    graded = task.grade(rows, answers, judge, RequestCache((out_dir or cache_dir("eval")) / JUDGEMENTS))
    samples = [{"task": task.name, "id": row["id"], "category": row["category"], "generation": pair,
                "pred": result["ratings"], "gold": row.get("gpt4_reference_turns"),
                "judgements": result["judgements"], "templates": result["templates"]}
               for row, pair, result in zip(rows, answers, graded)]
    return task.scores(rows, graded), samples


def run_task(lm: SmolLM, task: Task, rows: list[dict], *, allow_unisolated_code: bool,
             judge: JudgeConfig | None = None, out_dir: Path | None = None) -> tuple[dict, list[dict]]:
    """Metrics ``{name: {"value", "stderr"}}`` and per-item samples of one task on ``rows``."""
    if isinstance(task, MultipleChoiceTask):
        scores, samples = _multiple_choice(lm, task, rows)
    elif isinstance(task, LastWordTask):
        scores, samples = _last_word(lm, task, rows)
    elif isinstance(task, PasskeyTask):
        scores, samples = _passkey(lm, task, rows)
    elif isinstance(task, MTBenchTask):
        if judge is None:
            raise SmollabError(NO_JUDGE)
        scores, samples = _mt_bench(lm, task, rows, judge, out_dir)
    elif isinstance(task, CodeTask):
        scores, samples = _generative(lm, task, rows,
                                      partial(task.score, allow_unisolated_code=allow_unisolated_code))
    else:
        scores, samples = _generative(lm, task, rows, task.score)
    metrics = {}
    for name, values in scores.items():
        if name == "loglik":  # LAMBADA perplexity: exp of the mean negative log-likelihood per item
            metrics["perplexity"] = {"value": math.exp(-sum(values) / len(values)), "stderr": None}
            continue
        if not isinstance(values, list):  # a count (MT-Bench's unparseable judgements), not a mean over items
            metrics[name] = {"value": values, "stderr": None}
            continue
        value, stderr = mean_stderr(values)
        metrics[name] = {"value": value, "stderr": stderr}
    return metrics, samples


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter's name, dtype, shape and bytes: equal weights, equal fingerprint."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def code_isolation(tasks: Sequence[Task], allow_unisolated_code: bool) -> bool | None:
    """None when no task runs generated code, else whether the sandbox isolates it; raises before any
    model work where it cannot and the user has not allowed running code without isolation."""
    return check_isolation(allow_unisolated_code) if any(isinstance(t, CodeTask) for t in tasks) else None


def check_in_loop_tasks(eval_config) -> None:
    """A training run's ``eval.tasks``: an unknown task, generated code the sandbox cannot isolate, or an mt_bench
    judge whose API key is not set fails before training starts (one line naming the field), not at the first
    evaluation."""
    if eval_config.tasks:
        try:
            selected = expand(eval_config.tasks)
            code_isolation(selected, eval_config.allow_unisolated_code)
        except SmollabError as err:
            raise SmollabError(f"eval.tasks: {err}") from None
        judge = eval_config.judge
        if judge and any(isinstance(t, MTBenchTask) for t in selected):
            HttpClient(judge, "eval.judge")  # an unset API key fails here, not after the first checkpoint's answers


def evaluate(lm: SmolLM, tasks: Sequence[str], *, limit: int | None = None, sample: int | None = None,
             seed: int = 0, allow_unisolated_code: bool = False, judge: JudgeConfig | None = None,
             out_dir: Path | None = None) -> tuple[dict, list[dict]]:
    """Results (the JSON written by ``--out``) and all per-item samples, for task or group names.

    ``judge`` grades mt_bench (default: ``$SMOLLAB_JUDGE_URL``, else mt_bench is skipped in one printed line and
    named under ``skipped``); its judgements are cached in ``out_dir`` (default: the user cache)."""
    started = time.perf_counter()
    selected = expand(list(tasks))
    isolated = code_isolation(selected, allow_unisolated_code)
    judge = configured_judge(judge) if any(isinstance(t, MTBenchTask) for t in selected) else None
    out_tasks, all_samples, skipped = {}, [], {}
    for task in selected:
        if isinstance(task, PasskeyTask):
            task = task.fit(lm.max_length)
        if isinstance(task, MTBenchTask) and judge is None:
            table_console().print(NO_JUDGE, highlight=False, soft_wrap=True, markup=False)
            skipped[task.name] = "no judge endpoint configured"
            continue
        rows = select_rows(task, limit=limit, sample=sample, seed=seed)
        t0 = time.perf_counter()
        metrics, samples = run_task(lm, task, rows, allow_unisolated_code=allow_unisolated_code, judge=judge,
                                    out_dir=out_dir)
        out_tasks[task.name] = {
            "metrics": metrics, "items": len(rows), "rows": task.rows, "shots": task.shots,
            "seconds": round(time.perf_counter() - t0, 3), **_provenance(task)}
        all_samples.extend(samples)
    results = {
        "model": {"name": lm.name, "device": str(lm.device), "fingerprint": model_fingerprint(lm.model),
                  "parameters": sum(p.numel() for p in lm.model.parameters()),
                  "dtype": str(next(lm.model.parameters()).dtype).removeprefix("torch.")},
        "config": {"harness": "smollab", "limit": limit, "sample": sample, "seed": seed,
                   "batch_size": lm.batch_size, "chat_template": lm.chat_template, "max_length": lm.max_length,
                   "code_isolated": isolated,
                   "judge": {"base_url": judge.base_url, "model": judge.model} if judge else None},
        "tasks": out_tasks,
        "skipped": skipped,
        "averages": _averages(out_tasks),
        "seconds": round(time.perf_counter() - started, 3),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return results, all_samples


def _provenance(task: Task) -> dict:
    """Where a task's rows came from: its vendored file (name, sha256, hub), or the passkey grid it was
    generated from plus the lengths skipped as longer than the model's max_length."""
    if isinstance(task, PasskeyTask):
        grid = {"generator": type(task).__module__, "lengths": list(task.lengths), "depths": list(task.depths),
                "trials": task.trials, "seed": task.seed}
        return {"data": grid, "skipped_lengths": list(task.skipped_lengths)}
    data = {"file": task.path.name, "sha256": file_sha256(task.path), "hub": task.hub}
    if isinstance(task, MTBenchTask):
        data["judge_prompts"] = {"file": task.judge_prompts, "sha256": file_sha256(task.judge_prompts_path)}
    return {"data": data}


def _averages(tasks: dict) -> dict:
    """SmolLM2's "ARC (Average)": the mean of ARC-Easy and ARC-Challenge acc_norm."""
    if {"arc_easy", "arc_challenge"} <= tasks.keys():
        pair = [tasks[n]["metrics"]["acc_norm"]["value"] for n in ("arc_easy", "arc_challenge")]
        return {"arc": {"acc_norm": sum(pair) / 2}}
    return {}


def headline(metrics: dict) -> str:
    """The metric a summary shows for a task: acc_norm for choices, else the first one."""
    return "acc_norm" if "acc_norm" in metrics else next(iter(metrics))


def run_in_loop(model: torch.nn.Module, tokenizer, eval_config, *, tokens: int, stage: str, step: int,
                out_path: Path, heldout: dict | None = None, heldout_seq_len: int = 0, heldout_autocast=None) -> dict:
    """Evaluate an in-memory model during training and append one line to ``out_path`` (evals.jsonl):
    the benchmark metrics of ``eval_config.tasks``, their standard errors (where a metric has one) and, with
    ``heldout`` views, the held-out loss per source (under ``heldout_autocast``: the training precision, which
    is also what its loss was measured in). ``eval_config.judge`` grades mt_bench, its judgements cached next to
    ``out_path``.

    The model's train/eval mode and the torch (CPU and CUDA), Python and NumPy RNG states are
    restored afterwards, so a run with in-loop evaluation has the same losses as one without."""
    states = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
              random.getstate(), np.random.get_state())
    was_training = model.training
    model.eval()
    try:
        started = time.perf_counter()
        losses = (heldout_loss(model, heldout, heldout_seq_len, eval_config.heldout.batch_size, model.device,
                               heldout_autocast) if heldout else None)
        results = {"tasks": {}, "averages": {}}
        if eval_config.tasks:
            # the model's own positions: a run extended to 8k is scored (passkey) at up to 8k, not the adapter's default
            lm = SmolLM(model, tokenizer, batch_size=eval_config.batch_size, name=f"step-{step}",
                        max_length=model.config.max_position_embeddings)
            with torch.no_grad():
                results, _ = evaluate(lm, eval_config.tasks, limit=eval_config.limit,
                                      allow_unisolated_code=eval_config.allow_unisolated_code,
                                      judge=eval_config.judge, out_dir=Path(out_path).parent)
    finally:
        model.train(was_training)
        torch.set_rng_state(states[0])
        if states[1] is not None:
            torch.cuda.set_rng_state_all(states[1])
        random.setstate(states[2])
        np.random.set_state(states[3])
    line = {"step": step, "tokens": tokens, "stage": stage,
            "metrics": {name: {m: v["value"] for m, v in t["metrics"].items()} for name, t in results["tasks"].items()},
            "stderr": {name: {m: v["stderr"] for m, v in t["metrics"].items() if v["stderr"] is not None}
                       for name, t in results["tasks"].items()},
            "items": {name: t["items"] for name, t in results["tasks"].items()},
            "averages": results["averages"], "seconds": time.perf_counter() - started}
    if losses is not None:
        line["heldout"] = losses
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    return line
