"""The sections of post-training: SFT/DPO curves and data counts, and benchmark scores from ``smollab eval --out`` files.

SFT and DPO runs are plotted against the optimizer step, not tokens: their ``tokens`` count padding
and differ between packed (SFT) and paired (DPO) rows, so steps are the axis both share. Scores from
result files are shown side by side, one column per file (e.g. base.json and chat.json: before and
after), so every metric of every task is in the table while the bar chart keeps to each task's headline
metric; passkey's per-cell metrics go to its heat map instead of the table. The trade-off of a
column per file: files that scored different tasks leave dashes rather than being aligned by model.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from smollab.eval.plots import CELL_METRIC
from smollab.report import plots
from smollab.report.collect import EvalFile, Post, by_step
from smollab.report.document import Figure, Table, num, with_stderr
from smollab.report.pretrain import task_series

DPO_REWARDS = ("rewards/accuracies", "rewards/margins")


def state(part: Post) -> str:
    log = by_step(part.log, "loss")
    if not log:
        return "no step logged yet"
    epochs = part.tree.get("train", {}).get("epochs")
    epoch = log[-1].get("epoch")
    of = f" of {epochs:g}" if isinstance(epochs, (int, float)) else ""
    steps = f"{log[-1]['step']:,} steps logged"
    return f"{steps}, epoch {num(epoch, 2)}{of}" if epoch is not None else steps


def overview(part: Post) -> list:
    log, evals = by_step(part.log, "loss"), by_step(part.evals, "heldout")
    train = part.tree.get("train", {})
    rows = [["state", state(part)], ["starting model (model.init_from)", str(part.tree.get("model", {}).get("init_from"))],
            ["learning rate / schedule", f"{train.get('lr')} / {train.get('schedule')}"]]
    if part.kind == "dpo":
        rows.append(["β (train.beta)", str(train.get("beta"))])
    if log:
        tok_s = [r["tok_s"] for r in log if isinstance(r.get("tok_s"), (int, float))]
        rows += [["tokens seen (padding included)", num(log[-1].get("tokens"))], ["final training loss", num(log[-1]["loss"])],
                 ["median throughput (tokens/s)", f"{num(statistics.median(tok_s), 1)} over {len(tok_s)} logged steps"
                  if tok_s else "–"]]
    if evals:
        first, last = evals[0]["heldout"], evals[-1]["heldout"]
        rows.append(["held-out loss, first → last evaluation", f"{num(first.get('loss'))} → {num(last.get('loss'))}"])
        for key in DPO_REWARDS if part.kind == "dpo" else ():
            rows.append([f"held-out {key}, first → last", f"{num(first.get(key))} → {num(last.get(key))}"])
    return [Table(["quantity", "value"], rows, "read from log.jsonl, evals.jsonl and the resolved recipe")]


def post_blocks(part: Post) -> list:
    log, evals = by_step(part.log, "loss"), by_step(part.evals, "heldout")
    blocks = []

    def series(key: str) -> dict:
        return {"train": [(r["step"], r[key]) for r in log if isinstance(r.get(key), (int, float))],
                "held-out": [(e["step"], e["heldout"][key]) for e in evals if isinstance(e["heldout"].get(key), (int, float))]}

    if part.kind == "dpo":
        loss_panels = [("DPO loss", "loss (sigmoid DPO, nats)", series("loss"))]
        reward_panels = [("Reward accuracy (chosen > rejected)", "pairs (fraction)", series("rewards/accuracies")),
                         ("Reward margin (chosen − rejected)", "margin (β·log-ratio, nats)", series("rewards/margins"))]
    else:
        loss_panels = [("SFT loss (assistant tokens)", "loss (nats/token)", series("loss")),
                       ("Next-token accuracy", "accuracy (fraction)", series("mean_token_accuracy"))]
        reward_panels = []
    if png := plots.post_panels(loss_panels):
        blocks.append(Figure(f"{part.kind.upper()} loss: train and held-out", png,
                             "train: log.jsonl per logged step; held-out: evals.jsonl per evaluation"))
    if reward_panels and (png := plots.post_panels(reward_panels)):
        blocks.append(Figure("DPO rewards: accuracy and margin", png,
                             "train batches (log.jsonl) and held-out pairs (evals.jsonl)"))
    keys = [k for k in ("loss", "mean_token_accuracy", *DPO_REWARDS) if any(k in e["heldout"] for e in evals)]
    if keys:
        blocks.append(Table(["step", "epoch", "tokens", *(f"held-out {k}" for k in keys)],
                            [[num(e["step"]), num(e.get("epoch"), 3), num(e.get("tokens")),
                              *(num(e["heldout"].get(k)) for k in keys)] for e in evals],
                            "evals.jsonl: held-out split before training, every train.eval_every_steps and at the end"))
    panels, names, rows = task_series(evals, "step")
    if png := plots.task_panels(panels, "optimizer step", tokens=False):
        blocks.append(Figure("Instruct benchmarks during training", png, "eval.tasks scored with the chat template"))
    if rows:
        blocks.append(Table(["step", "tokens", *names], rows, "eval.tasks per evaluation (± standard error over items)"))
    if part.data_report:
        blocks += data_blocks(part.data_report)
    return blocks


def data_blocks(report: dict) -> list:
    """data_report.json: per source, rows read, kept for training and held out, truncated, dropped per reason."""
    sources = report.get("sources") or {}
    if not sources:
        return []
    rows = []
    for name, s in sources.items():
        dropped = ", ".join(f"{reason} {n:,}" for reason, n in (s.get("dropped") or {}).items() if n)
        rows.append([name, num(s.get("read")), num(s.get("train")), num(s.get("heldout")), num(s.get("truncated")),
                     dropped or "none"])
    train, held = report.get("train", {}), report.get("heldout", {})
    caption = (f"data_report.json: {num(train.get('count'))} training examples ({num(train.get('tokens'))} tokens), "
               f"{num(held.get('count'))} held out ({num(held.get('tokens'))} tokens)")
    return [Table(["source", "read", "train", "held out", "truncated", "dropped (per reason)"], rows, caption)]


def scores_blocks(files: list[EvalFile], labels: dict[Path, str]) -> list:
    """One column per result file; ``labels`` maps each file's path to how the report names it."""
    from smollab.eval.evaluate import headline

    names = [labels[f.path] for f in files]
    tasks = list(dict.fromkeys(t for f in files for t in f.tasks))
    blocks = [Table(["file", "model", "tasks (items scored)"],
                    [[labels[f.path], f.model, ", ".join(f"{t} ({num(f.items.get(t))})" for t in f.tasks) or "–"]
                     for f in files],
                    "smollab eval --out result files")]
    rows, bars = [], []
    for task in tasks:
        metrics = list(dict.fromkeys(m for f in files for m in f.tasks.get(task, {}) if not CELL_METRIC.fullmatch(m)))
        for metric in metrics:
            cells = [f.tasks.get(task, {}).get(metric) for f in files]
            rows.append([task, metric, *(with_stderr(*c) if c else "–" for c in cells)])
        if metrics:
            best = headline(dict.fromkeys(metrics))
            bars.append((f"{task}: {best}", [f.tasks.get(task, {}).get(best) for f in files]))
    if rows:
        blocks.append(Table(["task", "metric", *names], rows, "value ± standard error over items, one column per file"))
    if png := plots.score_bars(names, bars):
        blocks.append(Figure("Benchmark scores per file", png, "headline metric per task"))
    for file in files:
        cells = {m: v for m, (v, _) in file.tasks.get("passkey", {}).items()}
        if png := plots.passkey(cells, f"passkey retrieval: {file.model}"):
            blocks.append(Figure(f"Passkey retrieval: {labels[file.path]}", png, "accuracy per prompt length and needle depth"))
    return blocks
