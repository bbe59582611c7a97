"""Rules between stages: conditions on the last evaluation → actions on the next stage's shares.

Rules are evaluated in order on one flat metrics dict (``flatten_eval_line`` of the last
``evals.jsonl`` line) and every rule that holds is applied, each to the shares the previous firing
left, then fitted into the bounds (``shares.within_bounds``). Fitting after every firing, not once at
the end, makes each record's ``shares_after`` a valid mixture, so ``decisions.jsonl`` never shows a
mixture the sampler could not have used; the final shares are the last firing's. A rule whose metric
is missing (or not a number) at decision time does not fire: guessing a value would make a decision
nobody measured, and the record saying so is what lets a user see why a rule stayed silent.
"""

from __future__ import annotations

import math

from smollab.mix.config import HELDOUT, Condition, Rule, RulesPolicy
from smollab.mix.shares import within_bounds


def flatten_eval_line(line: dict) -> dict[str, float]:
    """``{"metrics": {task: {metric: v}}, "heldout": {source: loss}}`` → ``{"task.metric": v, "heldout.source": loss}``.

    ``run_in_loop`` writes plain numbers; ``{"value", "stderr"}`` (``smollab eval``'s JSON) is read too.
    Values that are not finite numbers (a metric over no items is NaN) are left out, i.e. missing."""
    flat = {f"{task}.{metric}": value for task, scores in line.get("metrics", {}).items()
            for metric, value in scores.items()}
    flat.update({f"{HELDOUT}.{source}": loss for source, loss in (line.get(HELDOUT) or {}).items()})
    numbers = {name: value.get("value") if isinstance(value, dict) else value for name, value in flat.items()}
    return {name: float(v) for name, v in numbers.items() if _is_number(v) and math.isfinite(v)}


def apply_rules(config: RulesPolicy, metrics: dict[str, float],
                shares: dict[str, float]) -> tuple[dict[str, float], list[dict]]:
    """The shares after every rule that holds, and one record per rule that fired or could not be read.

    A fired record: ``{rule, when, fired: True, metrics, shares_before, shares_after}``; a rule with a
    missing metric: ``{rule, when, fired: False, metrics (those read), reason}``. Shares come back
    unchanged (the same values) when nothing fires."""
    records = []
    for rule in config.rules:
        read, unread = _read(rule.when, metrics)
        record = {"rule": rule.name, "when": str(rule.when)}
        if unread:
            records.append({**record, "fired": False, "metrics": read, "reason": unread})
            continue
        if not rule.when.holds(_value(rule.when, read)):
            continue
        after = within_bounds(_act(rule, shares), config.bounds)
        records.append({**record, "fired": True, "metrics": read, "shares_before": dict(shares), "shares_after": after})
        shares = after
    return dict(shares), records


def _read(when: Condition, metrics: dict[str, float]) -> tuple[dict[str, float], str | None]:
    """The values a condition reads, and why it cannot be evaluated (None when it can)."""
    read = {name: metrics[name] for name in when.metrics if _is_number(metrics.get(name)) and math.isfinite(metrics[name])}
    absent = [name for name in when.metrics if name not in read]
    if absent:
        return read, f"{', '.join(absent)} not in the last evaluation"
    if when.divisor is not None and read[when.divisor] == 0:
        return read, f"{when.divisor} is 0, so the ratio is undefined"
    return read, None


def _value(when: Condition, read: dict[str, float]) -> float:
    return read[when.metric] if when.divisor is None else read[when.metric] / read[when.divisor]


def _act(rule: Rule, shares: dict[str, float]) -> dict[str, float]:
    """The shares after the rule's action, summing to 1 before bounds are applied."""
    if rule.move:
        source, to = rule.move.source, rule.move.to
        moved = min(rule.move.amount, shares.get(source, 0.0))
        return {**shares, source: shares.get(source, 0.0) - moved, to: shares.get(to, 0.0) + moved}
    if rule.add:
        named = {n: shares.get(n, 0.0) + x for n, x in rule.add.items()}
    else:
        named = {n: shares.get(n, 0.0) * f for n, f in rule.scale.items()}
    return _fill(shares, named)


def _fill(shares: dict[str, float], named: dict[str, float]) -> dict[str, float]:
    """``named`` sources take their new shares; the others are scaled proportionally to fill the rest.

    When the named ones reach 1 on their own, or no other source has share, the named ones are
    scaled to 1 instead (the only way the total can be 1); an action that would leave every source
    at 0 is not applied."""
    fixed = math.fsum(named.values())
    others = {n: s for n, s in shares.items() if n not in named}
    rest = math.fsum(others.values())
    if fixed == 0 and rest == 0:  # the action would leave no share at all: it is not applied
        return dict(shares)
    if fixed >= 1 or rest == 0:
        return {**{n: 0.0 for n in others}, **{n: s / fixed for n, s in named.items()}}
    return {**{n: s * (1 - fixed) / rest for n, s in others.items()}, **named}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
