"""The sections of a pretraining run: its overview facts, loss, learning rate, mixture and evaluations.

Each function turns one ``Pretrain`` part into report blocks (tables and figures) and reads nothing
itself. Tokens on every x axis are the run's own: ``tokens`` as ``log.jsonl`` and ``evals.jsonl`` wrote
them, stage spans and segments at ``step × batch.tokens_per_step`` (the same arithmetic the loop logs
with). The mixture comes only from the sampler ``smollab mixture`` rebuilds from the newest checkpoint,
so the shares drawn are the ones training read; its cost is that a run whose shards were deleted has
no mixture figure, only a note naming the fix, while its decisions are still listed.
"""

from __future__ import annotations

import statistics

from smollab.data.mixture import RECIPE
from smollab.report import plots
from smollab.report.collect import Pretrain, by_step
from smollab.report.document import Figure, Table, num, pct, with_stderr

HELDOUT = "heldout"


def tokens_per_step(part: Pretrain) -> int | None:
    return part.recipe.batch.tokens_per_step if part.recipe else None


def stage_spans(part: Pretrain) -> list[plots.Span]:
    per_step = tokens_per_step(part)
    return [(s.name, s.start_step * per_step, s.end_step * per_step) for s in part.stages] if per_step else []


def steps_log(part: Pretrain) -> list[dict]:
    return by_step(part.log, "tokens", "loss")


def sources(part: Pretrain) -> list[str]:
    """Every source the run names (schedule, logged losses, held-out), in the order they first appear."""
    names = list(part.sampler.schedule.sources) if part.sampler else []
    names += [s for r in steps_log(part) for s in r.get("loss_per_source", {})]
    names += [s for line in by_step(part.evals) for s in (line.get(HELDOUT) or {})]
    return list(dict.fromkeys(names))


def total_steps(part: Pretrain) -> int | None:
    return part.stages[-1].end_step if part.stages else None


def state(part: Pretrain) -> str:
    log, total = steps_log(part), total_steps(part)
    if not log:
        return "no step logged yet"
    done = log[-1]["step"] + 1
    if total is None:
        return f"{done:,} steps logged"
    return f"finished: {done:,} of {total:,} steps" if done >= total else f"in progress: {done:,} of {total:,} steps logged"


def overview(part: Pretrain) -> list:
    log = steps_log(part)
    rows = [["state", state(part)]]
    if log:
        last, total, per_step = log[-1], total_steps(part), tokens_per_step(part)
        planned = f" of {total * per_step:,} planned" if total and per_step else ""
        tok_s = [r["tok_s"] for r in log if isinstance(r.get("tok_s"), (int, float))]
        mfu = [r["mfu"] for r in log if isinstance(r.get("mfu"), (int, float))]
        precisions = ", ".join(dict.fromkeys(str(r.get("precision")) for r in log if r.get("precision")))
        devices = ", ".join(dict.fromkeys(str(r.get("device")) for r in log if r.get("device")))
        rows += [["tokens trained", f"{last['tokens']:,}{planned}"], ["final training loss", num(last["loss"])],
                 ["model parameters", num(last.get("params"))], ["precision (logged per step)", precisions or "–"],
                 ["device", devices or "–"]]
        if part.newest_meta and "world" in part.newest_meta:
            rows.append(["ranks (world size)", num(part.newest_meta["world"])])
        if part.recipe:
            train = part.recipe.train
            rows.append(["torch.compile / activation checkpointing", f"{train.compile} / {train.activation_checkpointing}"])
        rows += [["median throughput (tokens/s, all ranks)", f"{num(statistics.median(tok_s), 1)} over {len(tok_s)} steps"
                  if tok_s else "–"],
                 ["median MFU", f"{pct(statistics.median(mfu))} over {len(mfu)} steps" if mfu else
                  "– (no peak FLOPs known for this device)"]]
        timed = [r for r in log if isinstance(r.get("data_s"), (int, float)) and r.get("tok_s") and per_step]
        if timed:  # the sampler and window stacking inside each step, as the loop measures it
            share = statistics.median(r["data_s"] * r["tok_s"] / per_step for r in timed)
            rows.append(["median data-path time per step (this rank)",
                         f"{num(statistics.median(r['data_s'] for r in timed) * 1000, 1)} ms ({100 * share:.2g}% of the step)"])
    rows.append(["newest checkpoint", f"step {part.newest_meta['step']:,}" if part.newest_meta else "none yet"])
    blocks = [Table(["quantity", "value"], rows, "read from log.jsonl (last line, medians over all lines), the "
                    "resolved recipe and the newest checkpoint")]
    if part.profile:
        from smollab.train.profile import BUCKETS

        # the buckets the summaries hold: a summary written before a bucket existed simply lacks it
        buckets = [b for b in (*BUCKETS, "outside_ops") if any(b in p for p in part.profile.values())]
        blocks.append(Table(["rank", "steps", "tokens", "wall (s)", *(b.replace("_", " ") for b in buckets)],
                            [[rank, "–".join(map(str, p["steps"])), num(p["tokens"]), num(p["wall_s"], 3),
                              *(pct(p[b] / p["wall_s"]) if p["wall_s"] and b in p else "–" for b in buckets)]
                             for rank, p in part.profile.items()],
                            "train.profile window (profile/summary-*.json): share of the profiled wall time per bucket"))
    return blocks


def loss_blocks(part: Pretrain, colors: dict[str, str]) -> list:
    log = steps_log(part)
    if not log:
        return []
    names = sources(part)
    per_source = {s: [(r["tokens"], r["loss_per_source"][s]) for r in log if s in r.get("loss_per_source", {})]
                  for s in names}
    blocks = []
    if png := plots.training_loss([(r["tokens"], r["loss"]) for r in log], per_source, colors, stage_spans(part),
                                  segment_boundaries(part)):
        blocks.append(Figure("Training loss vs tokens", png, "log.jsonl, one point per logged step; dashed lines: "
                             "a new mixture segment (a decision) starts"))
    ends = {}
    for record in log:
        ends[record.get("stage", "–")] = record
    logged = [s for s in names if any(s in r.get("loss_per_source", {}) for r in ends.values())]
    blocks.append(Table(["stage", "last step", "tokens", "loss", *logged],
                        [[stage, num(r["step"]), num(r["tokens"]), num(r["loss"]),
                          *(num(r.get("loss_per_source", {}).get(s)) for s in logged)] for stage, r in ends.items()],
                        "training loss at each stage's last logged step (the last row is the run's final loss)"))
    return blocks


def segment_boundaries(part: Pretrain) -> list[float]:
    per_step = tokens_per_step(part)
    if not part.sampler or not per_step:
        return []
    return [s.start_step * per_step for s in part.sampler.schedule.segments if s.decision != RECIPE]


def lr_blocks(part: Pretrain) -> list:
    log = [r for r in steps_log(part) if isinstance(r.get("lr"), (int, float))]
    if not log:
        return []
    blocks = []
    if png := plots.learning_rate([(r["tokens"], r["lr"]) for r in log], stage_spans(part)):
        blocks.append(Figure("Learning rate vs tokens", png, "the LR each logged step trained with"))
    phases: list[list[dict]] = []
    for record in log:
        if phases and phases[-1][0].get("lr_phase") == record.get("lr_phase"):
            phases[-1].append(record)
        else:
            phases.append([record])
    blocks.append(Table(["phase", "steps", "LR at first step", "LR at last step"],
                        [[p[0].get("lr_phase", "–"), f"{p[0]['step']:,}–{p[-1]['step']:,}", num(p[0]["lr"], 6),
                          num(p[-1]["lr"], 6)] for p in phases], "learning-rate schedule phases as logged"))
    return blocks


def decision_kind(record: dict) -> str | None:
    policy = record.get("policy")
    if policy == "rules":
        return "rules" if record.get("fired") else "rules-silent"
    return policy if policy in ("odm", "spike_guard") else None


def _changes(before: dict, after: dict) -> str:
    pairs = [(s, pct(before.get(s, 0.0)), pct(after.get(s, 0.0))) for s in dict.fromkeys([*before, *after])]
    moved = [f"{s} {was} → {now}" for s, was, now in pairs if was != now]  # a change too small to show is not listed
    return ", ".join(moved) or "shares unchanged"


def describe_decision(record: dict) -> tuple[str, str]:
    """(what, why) of one decisions.jsonl line."""
    policy = record.get("policy")
    if policy == "rules":
        where = f" (evaluation of step {record['evaluated_at']:,})" if "evaluated_at" in record else ""
        read = ", ".join(f"{k} {num(v)}" for k, v in (record.get("metrics") or {}).items())
        if record.get("fired"):
            what = f"rule {record.get('rule')} fired: {_changes(record['shares_before'], record['shares_after'])}"
            return what, f"{record.get('when')}; read {read}{where}"
        what = f"rule {record['rule']} did not fire" if "rule" in record else "no rule fired"
        return what, f"{record.get('reason', 'its condition did not hold')}" + (f"; read {read}" if read else "") + where
    if policy == "odm":
        losses = ", ".join(f"{k} {num(v, 3)}" for k, v in (record.get("smoothed_losses") or {}).items())
        return (f"ODM round {record.get('round')}: {_changes(record['shares_before'], record['shares_after'])}",
                f"EXP3 bandit update from smoothed training losses {losses}")
    if policy == "spike_guard":
        return (f"spike undone: rewound to step {record.get('rewound_to')}, step {record.get('step')}'s samples skipped "
                f"(rewind {record.get('rewind')} in a row)", str(record.get("reason")))
    return str(policy), ""


def mixture_blocks(part: Pretrain, colors: dict[str, str]) -> list:
    decisions = [r for r in part.decisions.records if isinstance(r.get("step"), int)]
    per_step = tokens_per_step(part)
    blocks = []
    if part.sampler and per_step:
        sampler = part.sampler
        segments = [(s.start_step * per_step, s.end_step * per_step, {n: s.weight(n) for n in s.sources})
                    for s in sampler.schedule.segments]
        marks = [(r.get("tokens", r["step"] * per_step), kind) for r in decisions if (kind := decision_kind(r))]
        log = steps_log(part)
        schedule_colors = {s: colors[s] for s in sampler.schedule.sources}
        if png := plots.mixture_shares(segments, schedule_colors, stage_spans(part), marks,
                                       log[-1]["tokens"] if log else 0):
            blocks.append(Figure("Mixture shares per source vs tokens", png,
                                 f"schedule {part.sampler_origin}; vertical marks: decisions.jsonl"))
        names = sampler.schedule.sources
        rows = []
        for k, segment in enumerate(sampler.schedule.segments):
            plan = sampler.stages[segment.stage]
            tokens = (segment.end_step - segment.start_step) * plan.samples_per_step * plan.seq_len
            rows.append([str(k), plan.name, f"{segment.start_step:,}–{segment.end_step:,}", f"{tokens:,}",
                         *(pct(segment.weight(s)) if s in segment.sources else "" for s in names), segment.decision])
        blocks.append(Table(["segment", "stage", "steps", "tokens", *names, "decision"], rows,
                            f"realised mixture schedule {part.sampler_origin}; steps [first, end), shares are token shares"))
        consumed, planned = sampler.consumed(part.sampler_step), sampler.consumed(sampler.total_steps)
        total = sum(consumed["stages"].values())
        blocks.append(Table(
            ["source", "tokens", "share", "epochs", "planned tokens", "planned epochs"],
            [[s, f"{(done := consumed['sources'].get(s, {'tokens': 0, 'epochs': 0.0}))['tokens']:,}",
              pct(done["tokens"] / total) if total else "–", num(done["epochs"], 3),
              f"{planned['sources'][s]['tokens']:,}", num(planned["sources"][s]["epochs"], 3)] for s in names],
            f"consumed by step {part.sampler_step:,} of {sampler.total_steps:,} "
            f"({'the newest checkpoint' if part.newest_meta else 'no checkpoint yet'}), as `smollab mixture` counts it"))
    if decisions:
        rows = [[num(r["step"]), num(r.get("tokens")), str(r.get("stage", "–")), *describe_decision(r)] for r in decisions]
        blocks.append(Table(["step", "tokens", "stage", "what", "why"], rows, "decisions.jsonl: every rules firing, "
                            "ODM round and loss spike undone, in the order taken"))
    return blocks


def _headline(metrics: dict) -> str:
    from smollab.eval.evaluate import headline

    return headline(metrics)


def task_series(lines: list[dict], x: str) -> tuple[dict, list[str], list[list[str]]]:
    """Panels for ``plots.task_panels`` and the (header, rows) of the per-checkpoint task table."""
    names = list(dict.fromkeys(f"{task} ({_headline(m)})" for line in lines
                               for task, m in line.get("metrics", {}).items() if m))
    panels: dict[str, list] = {name: [] for name in names}
    rows = []
    for line in lines:
        cells = {}
        for task, metrics in line.get("metrics", {}).items():
            if not metrics:
                continue
            metric = _headline(metrics)
            stderr = (line.get("stderr") or {}).get(task, {}).get(metric)
            panels[f"{task} ({metric})"].append((line[x], metrics[metric], stderr))
            cells[f"{task} ({metric})"] = with_stderr(metrics[metric], stderr)
        if cells:
            rows.append([num(line["step"]), num(line.get("tokens")), *(cells.get(n, "–") for n in names)])
    return panels, names, rows


def evaluation_blocks(part: Pretrain, colors: dict[str, str]) -> list:
    lines = by_step(part.evals, "tokens")
    if not lines:
        return []
    blocks = []
    panels, names, rows = task_series(lines, "tokens")
    if png := plots.task_panels(panels, "tokens trained (cumulative)"):
        blocks.append(Figure("Benchmark scores per checkpoint", png, "evals.jsonl, headline metric per task"))
    if rows:
        blocks.append(Table(["step", "tokens", *names], rows,
                            "in-loop evaluation per checkpoint (± standard error over items)"))
    held = [s for s in sources(part) if any(s in (line.get(HELDOUT) or {}) for line in lines)]
    series = {s: [(line["tokens"], line[HELDOUT][s]) for line in lines if s in (line.get(HELDOUT) or {})] for s in held}
    if png := plots.curves_vs(series, colors, "Held-out loss per source vs tokens (one point per checkpoint)",
                              "held-out loss (nats/token)", stage_spans(part)):
        blocks.append(Figure("Held-out loss per source", png, "eval.heldout: the last tokens of each source, never trained on"))
    if held:
        blocks.append(Table(["step", "tokens", "stage", *held],
                            [[num(line["step"]), num(line["tokens"]), str(line.get("stage", "–")),
                              *(num((line.get(HELDOUT) or {}).get(s)) for s in held)]
                             for line in lines if line.get(HELDOUT)], "held-out loss per source at each checkpoint"))
    with_cells = [line for line in lines if "passkey" in line.get("metrics", {})]
    if with_cells and (png := plots.passkey(with_cells[-1]["metrics"]["passkey"],
                                            f"passkey retrieval at step {with_cells[-1]['step']:,}")):
        blocks.append(Figure("Passkey retrieval (prompt length × needle depth)", png,
                             "newest checkpoint with passkey cells; each cell's accuracy in percent"))
    return blocks
