"""Rules between stages: at the first step of a stage whose ``rebalance`` is ``policy: rules``, read the
evaluation of the checkpoint that ended the previous stage, apply the rules to the stage's shares and
hand the result to the sampler as a new segment.

The decision is a pure function of (that evaluation line, the stage's shares, the rules), so it is
taken at the start of the boundary step, after the checkpoint, its export and their evaluation are
published. A run resumed from that checkpoint takes it again from the same line (kept in
``evals.jsonl``, or recomputed from the same export), so it gets the same segment; every decision
before a checkpoint comes back from the schedule stored in it and is never taken again. The cost of
deciding after the checkpoint rather than before it: the checkpoint's schedule does not yet hold the
decision made at its own step, which is why resuming re-derives that one.
"""

from __future__ import annotations

from smollab.data.mixture import MixtureSampler
from smollab.mix.config import RulesPolicy
from smollab.mix.rules import apply_rules, flatten_eval_line
from smollab.recipe import Recipe


def rules_due(recipe: Recipe, sampler: MixtureSampler, step: int) -> RulesPolicy | None:
    """The rules to apply before ``step``: those of the stage that starts at ``step``, if any."""
    plan = sampler.stage_of_step(step)
    policy = recipe.stages[plan.index].rebalance
    return policy if step == plan.start_step and isinstance(policy, RulesPolicy) else None


def rule_targets(recipe: Recipe) -> set[str]:
    """Sources a rule may bring into a stage, beyond the recipe's mixtures: their shards must be loaded."""
    return {source for stage in recipe.stages if isinstance(stage.rebalance, RulesPolicy)
            for rule in stage.rebalance.rules for source in rule.targets}


def decide(policy: RulesPolicy, sampler: MixtureSampler, step: int, eval_line: dict) -> list[dict]:
    """Apply ``policy`` from ``step`` on; returns the ``decisions.jsonl`` lines (one per rule that fired or
    could not be read, or one saying that none held)."""
    segment = sampler.segment_of_step(step)
    before = {source: segment.weight(source) for source in segment.sources}
    metrics = flatten_eval_line(eval_line)
    shares, records = apply_rules(policy, metrics, before)
    fired = [record["rule"] for record in records if record["fired"]]
    where = {"step": step, "stage": sampler.stages[segment.stage].name, "policy": "rules", "evaluated_at": eval_line["step"]}
    if fired:
        new = sampler.set_shares(step, shares, decision="rules: " + ", ".join(fired))
        return [where | record | {"segment": new.to_json()} for record in records]
    read = {name: metrics[name] for rule in policy.rules for name in rule.when.metrics if name in metrics}
    return [where | record for record in records] or [where | {"fired": False, "reason": "no condition held",
                                                                "metrics": read, "shares": before}]
