"""The rebalance: section: conditions parse at load time and every bad rule is one line naming its field."""

import pytest
from pydantic import TypeAdapter, ValidationError

from smollab.mix.config import RebalanceConfig, check_rebalance

POLICY = TypeAdapter(RebalanceConfig)
STAGE = {"web", "code"}
SOURCES = {"web", "code", "math"}
TASKS = ["hellaswag", "gsm8k"]
WHERE = "stages.1.rebalance"


def rule(**fields) -> dict:
    return {"when": "gsm8k.exact_match < 0.05", **fields}


def check(config: dict, *, heldout: bool = True, stage: set = STAGE) -> None:
    check_rebalance(WHERE, POLICY.validate_python(config), stage, SOURCES, TASKS, heldout)


def test_a_condition_is_parsed_when_the_recipe_loads_and_dumps_back_as_written():
    config = POLICY.validate_python({"policy": "rules", "rules": [
        {"when": "heldout.code / heldout.web >= 1.1", "move": {"from": "web", "to": "code", "amount": 0.1}},
        {"when": "humaneval.pass@1<0.1", "add": {"code": 0.05}}]})
    first = config.rules[0].when
    assert (first.metric, first.divisor, first.op, first.threshold) == ("heldout.code", "heldout.web", ">=", 1.1)
    assert [r.name for r in config.rules] == ["rule-0", "rule-1"]
    dumped = config.model_dump(mode="json")
    assert dumped["rules"][1]["when"] == "humaneval.pass@1 < 0.1"
    assert dumped["rules"][0]["move"] == {"from": "web", "to": "code", "amount": 0.1}
    assert POLICY.validate_python(dumped) == config


@pytest.mark.parametrize("fields, loc, expected", [
    ({"when": "gsm8k.exact_match = 0.05", "add": {"math": 0.1}}, "when",
     "cannot read 'gsm8k.exact_match = 0.05' as a condition"),
    ({"when": "gsm8k < 0.05", "add": {"math": 0.1}}, "when", "cannot read 'gsm8k < 0.05'"),
    ({"when": "gsm8k.exact_match < low", "add": {"math": 0.1}}, "when", "cannot read"),
    (rule(add={"math": 0.1}, scale={"web": 2}), "", "give exactly one action: add, move or scale (got add, scale)"),
    (rule(), "", "give exactly one action: add, move or scale (got none)"),
    (rule(add={}), "", "add names no source"),
    (rule(add={"math": 1.5}), "add.math", "less than or equal to 1"),
    (rule(scale={"web": -1}), "scale.web", "greater than or equal to 0"),
    (rule(move={"from": "web", "to": "code", "amount": 0}), "move.amount", "greater than 0"),
])
def test_a_malformed_rule_is_a_field_error(fields, loc, expected):
    with pytest.raises(ValidationError) as err:
        POLICY.validate_python({"policy": "rules", "rules": [fields]})
    first = err.value.errors()[0]
    assert ".".join(str(p) for p in first["loc"]) == ".".join(p for p in ("rules.rules.0", loc) if p)
    assert expected in first["msg"]


@pytest.mark.parametrize("config, heldout, expected", [
    ({"rules": [rule(add={"maths": 0.1})]}, True,
     "stages.1.rebalance.rules.0.add.maths: unknown source 'maths'; use one of data.sources"),
    ({"rules": [rule(move={"from": "web", "to": "news", "amount": 0.1})]}, True,
     "stages.1.rebalance.rules.0.move: unknown source 'news'"),
    ({"rules": [rule(when="mmlu_pro.acc < 0.2", add={"math": 0.1})]}, True,
     "stages.1.rebalance.rules.0.when: 'mmlu_pro.acc' reads task 'mmlu_pro', which is not in eval.tasks (hellaswag, gsm8k); add the task"),
    ({"rules": [rule(when="heldout.web > 4", add={"math": 0.1})]}, False,
     "stages.1.rebalance.rules.0.when: 'heldout.web' reads held-out loss, which is measured only with eval.heldout; set eval.heldout"),
    ({"rules": [rule(when="heldout.web / heldout.news > 1", add={"math": 0.1})]}, True,
     "stages.1.rebalance.rules.0.when: 'heldout.news' names unknown source 'news'"),
    ({"rules": [rule(add={"math": 0.1})], "bounds": {"news": [0, 0.5]}}, True,
     "stages.1.rebalance.bounds.news: unknown source 'news'"),
    ({"rules": [rule(add={"math": 0.1})], "bounds": {"web": [0.6, 0.4]}}, True,
     "stages.1.rebalance.bounds.web: [0.6, 0.4] is not a range inside [0, 1]; write [min, max]"),
    ({"rules": [rule(add={"math": 0.1})], "bounds": {"web": [0.2, 1.2]}}, True,
     "stages.1.rebalance.bounds.web: [0.2, 1.2] is not a range"),
    ({"rules": [rule(add={"math": 0.1})], "bounds": {"web": [0.6, 1], "math": [0.5, 1]}}, True,
     "stages.1.rebalance.bounds: the minima sum to 1.1 > 1, so the bounds cannot hold; lower some minima"),
    ({"rules": [rule(add={"math": 0.1})], "bounds": {"web": [0, 0.5], "code": [0, 0.3]}}, True,
     "stages.1.rebalance.bounds: the maxima of code, web sum to 0.8 < 1, so the bounds cannot hold; raise some maxima"),
    ({"rules": [rule(move={"from": "math", "to": "web", "amount": 0.1})]}, True,
     "stages.1.rebalance.rules.0.move: 'math' has no share in this stage and no earlier rule gives it one"),
    ({"rules": [rule(move={"from": "web", "to": "web", "amount": 0.1})]}, True,
     "stages.1.rebalance.rules.0.move: moves share from 'web' to itself"),
    ({"rules": [rule(scale={"web": 0, "code": 0})]}, True,
     "stages.1.rebalance.rules.0.scale: scales every source in play to 0, so no shares are left to sum to 1"),
    ({"rules": [rule(add={"math": 0.1}), rule(name="rule-0", scale={"web": 2})]}, True,
     "stages.1.rebalance.rules.1.name: 'rule-0' is also the name of rules.0; give each rule its own name"),
])
def test_every_bad_rule_is_one_line_naming_its_field_and_the_fix(config, heldout, expected):
    with pytest.raises(ValueError) as err:
        check({"policy": "rules", **config}, heldout=heldout)
    message = str(err.value)
    assert message.startswith(expected) and "\n" not in message and "; " in message


def test_a_rule_on_a_one_source_stage_that_cannot_change_it_is_refused():
    with pytest.raises(ValueError, match=r"^stages.1.rebalance.rules.0.scale: 'web' is the only source in play"):
        check({"policy": "rules", "rules": [rule(scale={"web": 0.5})]}, stage={"web"})
    check({"policy": "rules", "rules": [rule(add={"math": 0.2})]}, stage={"web"})  # adding a source can


def test_a_move_from_a_source_an_earlier_rule_adds_is_accepted():
    check({"policy": "rules", "rules": [rule(add={"math": 0.2}),
                                        rule(when="heldout.math < 2", move={"from": "math", "to": "web", "amount": 0.1})]})


@pytest.mark.parametrize("config, stage, expected", [
    ({"every_steps": 10, "bounds": {"math": [0, 0.5]}}, STAGE,
     "stages.1.rebalance.bounds.math: unknown source 'math'; bounds name sources of this stage's mixture (code, web)"),
    ({"every_steps": 10}, {"web"}, "stages.1.rebalance.policy: odm chooses between the stage's sources and this stage has only web"),
    ({"every_steps": 10, "bounds": {"web": [0.7, 1], "code": [0.4, 1]}}, STAGE, "stages.1.rebalance.bounds: the minima sum to 1.1 > 1"),
])
def test_a_bad_odm_section_is_one_line(config, stage, expected):
    with pytest.raises(ValueError) as err:
        check({"policy": "odm", **config}, stage=stage)
    assert str(err.value).startswith(expected)


def test_odm_requires_a_positive_segment_length_and_a_smoothing_below_one():
    with pytest.raises(ValidationError) as err:
        POLICY.validate_python({"policy": "odm", "every_steps": 0})
    assert [e["loc"] for e in err.value.errors()] == [("odm", "every_steps")]
    with pytest.raises(ValidationError):
        POLICY.validate_python({"policy": "odm", "every_steps": 5, "smoothing": 1.0})
