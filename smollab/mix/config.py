"""A stage's ``rebalance:`` section: rules between stages, or online data mixing (ODM) inside one.

``policy: rules`` changes the stage's mixture once, when it starts, from the metrics of the last
evaluation (benchmarks and held-out loss per source, as in ``evals.jsonl``): SmolLM2 §4 added math
when GSM8K lagged and flipped FineWeb-Edu/DCLM when MMLU stalled. It is explicit and auditable (each
firing is one ``decisions.jsonl`` line) but only as good as its thresholds, which a human sets.
``policy: odm`` lets an EXP3 bandit re-decide the shares every ``every_steps`` steps from the
training loss per source: no thresholds to tune, at the price of optimising a proxy (loss still to
learn) rather than the benchmark one cares about. Both fit their output into ``bounds``.

Conditions are parsed when the recipe loads, so a typo is a load-time error, not a rule that
silently never fires; ``check_rebalance`` then checks what needs the whole recipe (sources, tasks).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from smollab.schema import Strict


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_METRIC = r"[\w-]+\.[\w@-]+"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(rf"\s*({_METRIC})\s*(?:/\s*({_METRIC})\s*)?(<=|>=|<|>)\s*({_NUMBER})\s*")
HELDOUT = "heldout"


@dataclass(frozen=True)
class Condition:
    """``metric op threshold`` or ``metric / divisor op threshold``, parsed from a ``when:`` string.

    A metric is ``<task>.<metric>`` (a benchmark score) or ``heldout.<source>`` (held-out loss)."""

    metric: str
    op: str
    threshold: float
    divisor: str | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,) if self.divisor is None else (self.metric, self.divisor)

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        left = self.metric if self.divisor is None else f"{self.metric} / {self.divisor}"
        return f"{left} {self.op} {self.threshold:g}"


def parse_condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    match = _CONDITION.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"cannot read {value!r} as a condition; write '<metric> <op> <number>' or "
                         "'<metric> / <metric> <op> <number>' with op one of < <= > >=, e.g. 'gsm8k.exact_match < 0.05'")
    metric, divisor, op, number = match.groups()
    return Condition(metric, op, float(number), divisor)


When = Annotated[Condition, PlainValidator(parse_condition), PlainSerializer(str, return_type=str),
                 WithJsonSchema({"type": "string"})]
Share = Annotated[float, Field(gt=0, le=1)]
Factor = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Bound = tuple[Annotated[float, Field(allow_inf_nan=False)], Annotated[float, Field(allow_inf_nan=False)]]


class Move(Strict):
    """Move ``amount`` of share from one source to another; at most what ``from`` has."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    source: str = Field(alias="from", description="source that gives share")
    to: str = Field(description="source that receives it")
    amount: Share = Field(description="share moved, in (0, 1]; capped at the giver's share")


class Rule(Strict):
    """When ``when`` holds on the last evaluation, apply exactly one action to the stage's shares."""

    name: str | None = Field(None, description="names the firing in decisions.jsonl; default rule-<i>")
    when: When = Field(description="'<metric> <op> <number>' or '<metric> / <metric> <op> <number>'; op: < <= > >=; "
                                   "metric: <task>.<metric> (e.g. gsm8k.exact_match) or heldout.<source>")
    add: dict[str, Share] | None = Field(None, description="add this share to each source, then scale the other "
                                                           "sources proportionally so the total is 1")
    move: Move | None = Field(None, description="{from, to, amount}: move share between two sources; the others keep theirs")
    scale: dict[str, Factor] | None = Field(None, description="multiply each source's share by a factor ≥ 0, then scale "
                                                              "the other sources proportionally so the total is 1")

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        given = [k for k in ("add", "move", "scale") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one action: add, move or scale (got {', '.join(given) or 'none'})")
        if given[0] != "move" and not getattr(self, given[0]):
            raise ValueError(f"{given[0]} names no source; write e.g. {given[0]}: {{math: 0.1}}")
        return self

    @property
    def targets(self) -> list[str]:
        """The sources the action names."""
        return [self.move.source, self.move.to] if self.move else list(self.add or self.scale)


class RulesPolicy(Strict):
    """Declarative rules, evaluated in order when the stage starts; every firing is applied."""

    policy: Literal["rules"] = Field(description="rules: change the mixture once, when the stage starts")
    rules: list[Rule] = Field(min_length=1, description="conditions on the last evaluation and their actions, in order")
    bounds: dict[str, Bound] = Field({}, description="[min, max] share per source after every firing; "
                                                     "unnamed sources may take any share")

    @model_validator(mode="after")
    def _default_names(self) -> RulesPolicy:
        for i, rule in enumerate(self.rules):
            if rule.name is None:
                rule.name = f"rule-{i}"
        return self


class OdmPolicy(Strict):
    """Online data mixing: an EXP3 bandit over the stage's sources re-decides their shares as it trains."""

    policy: Literal["odm"] = Field(description="odm: re-decide the shares every every_steps steps")
    every_steps: int = Field(ge=1, description="steps per segment: the shares are re-decided this often")
    bounds: dict[str, Bound] = Field({}, description="[min, max] share per source of the stage; "
                                                     "unnamed sources may take any share")
    smoothing: float = Field(0.9, ge=0, lt=1, description="EMA factor of each source's training loss "
                                                          "(the bandit's reward); 0 uses the last step's loss")


RebalanceConfig = Annotated[RulesPolicy | OdmPolicy, Field(discriminator="policy")]


def check_rebalance(where: str, config: RulesPolicy | OdmPolicy, stage_sources: set[str], all_sources: set[str],
                    tasks: list[str], heldout: bool) -> None:
    """Cross-field checks of one stage's ``rebalance:`` (at ``where``), as one-line ``ValueError``s.

    ``stage_sources``: the stage's mixture; ``all_sources``: data.sources (a rule may add any of
    them); ``tasks``: eval.tasks with groups expanded; ``heldout``: whether eval.heldout is set."""
    arms = stage_sources if isinstance(config, OdmPolicy) else all_sources
    _check_bounds(where, config.bounds, arms, stage_sources | set(config.bounds), isinstance(config, OdmPolicy))
    if isinstance(config, OdmPolicy):
        if len(stage_sources) < 2:
            raise ValueError(f"{where}.policy: odm chooses between the stage's sources and this stage has only "
                             f"{', '.join(sorted(stage_sources))}; add a source to the mixture or drop rebalance")
        return
    in_play = stage_sources | set(config.bounds)
    names: dict[str, int] = {}
    for i, rule in enumerate(config.rules):
        at = f"{where}.rules.{i}"
        if rule.name in names:
            raise ValueError(f"{at}.name: '{rule.name}' is also the name of rules.{names[rule.name]}; "
                             "give each rule its own name (it identifies the firing in decisions.jsonl)")
        names[rule.name] = i
        for metric in rule.when.metrics:
            _check_metric(f"{at}.when", metric, all_sources, tasks, heldout)
        _check_action(at, rule, in_play, all_sources)
        in_play |= set(rule.targets)


def _check_bounds(where: str, bounds: dict, allowed: set[str], in_play: set[str], odm: bool) -> None:
    for name, (low, high) in bounds.items():
        if name not in allowed:
            scope = "this stage's mixture" if odm else "data.sources"
            raise ValueError(f"{where}.bounds.{name}: unknown source '{name}'; bounds name sources of {scope} "
                             f"({', '.join(sorted(allowed))})")
        if not 0 <= low <= high <= 1:
            raise ValueError(f"{where}.bounds.{name}: [{low:g}, {high:g}] is not a range inside [0, 1]; "
                             "write [min, max] with 0 ≤ min ≤ max ≤ 1")
    low_total = math.fsum(bounds[n][0] for n in bounds)
    high_total = math.fsum(bounds[n][1] if n in bounds else 1.0 for n in in_play)
    if low_total > 1 + 1e-9:
        raise ValueError(f"{where}.bounds: the minima sum to {low_total:g} > 1, so the bounds cannot hold; lower some minima")
    if high_total < 1 - 1e-9:
        raise ValueError(f"{where}.bounds: the maxima of {', '.join(sorted(in_play))} sum to {high_total:g} < 1, "
                         "so the bounds cannot hold; raise some maxima")


def _check_metric(where: str, metric: str, sources: set[str], tasks: list[str], heldout: bool) -> None:
    group, name = metric.split(".", 1)
    if group == HELDOUT:
        if not heldout:
            raise ValueError(f"{where}: '{metric}' reads held-out loss, which is measured only with eval.heldout; "
                             "set eval.heldout or use a benchmark metric")
        if name not in sources:
            raise ValueError(f"{where}: '{metric}' names unknown source '{name}'; use one of data.sources "
                             f"({', '.join(sorted(sources))})")
    elif group not in tasks:
        listed = f"eval.tasks ({', '.join(tasks)})" if tasks else "eval.tasks, which is empty"
        raise ValueError(f"{where}: '{metric}' reads task '{group}', which is not in {listed}; "
                         "add the task to eval.tasks or fix the name")


def _check_action(at: str, rule: Rule, in_play: set[str], sources: set[str]) -> None:
    action = "move" if rule.move else "add" if rule.add else "scale"
    for name in rule.targets:
        if name not in sources:
            field = f"{at}.move" if rule.move else f"{at}.{action}.{name}"
            raise ValueError(f"{field}: unknown source '{name}'; use one of data.sources ({', '.join(sorted(sources))})")
    if rule.move:
        if rule.move.source == rule.move.to:
            raise ValueError(f"{at}.move: moves share from '{rule.move.to}' to itself; name two different sources")
        if rule.move.source not in in_play:
            raise ValueError(f"{at}.move: '{rule.move.source}' has no share in this stage and no earlier rule gives it "
                             "one, so there is nothing to move; move from a source of the mixture")
        return
    if len(in_play | set(rule.targets)) < 2:
        raise ValueError(f"{at}.{action}: '{rule.targets[0]}' is the only source in play, and a mixture of one source "
                         "is always 1, so the rule can never change it; add another source or drop the rule")
    if rule.scale and not any(rule.scale.get(n, 1.0) > 0 for n in in_play):
        raise ValueError(f"{at}.scale: scales every source in play to 0, so no shares are left to sum to 1; "
                         "keep one factor above 0")
