"""Rules between stages: conditions on the last evaluation change the next stage's shares."""

import math

import pytest
from pydantic import TypeAdapter

from smollab.mix.config import RebalanceConfig
from smollab.mix.rules import apply_rules, flatten_eval_line

POLICY = TypeAdapter(RebalanceConfig)


def rules(*rules: dict, bounds: dict | None = None):
    return POLICY.validate_python({"policy": "rules", "rules": list(rules), "bounds": bounds or {}})


def assert_shares(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    assert all(math.isclose(actual[n], expected[n], abs_tol=1e-12) for n in expected), actual
    assert math.isclose(math.fsum(actual.values()), 1.0, abs_tol=1e-12)


def test_add_fires_on_a_lagging_benchmark_and_renormalises_the_others():
    config = rules({"name": "math-when-gsm8k-lags", "when": "gsm8k.exact_match < 0.05", "add": {"math": 0.2}})
    shares, records = apply_rules(config, {"gsm8k.exact_match": 0.02}, {"web": 0.6, "code": 0.4})
    assert_shares(shares, {"web": 0.48, "code": 0.32, "math": 0.2})
    assert records == [{"rule": "math-when-gsm8k-lags", "when": "gsm8k.exact_match < 0.05", "fired": True,
                        "metrics": {"gsm8k.exact_match": 0.02}, "shares_before": {"web": 0.6, "code": 0.4},
                        "shares_after": shares}]


def test_a_bound_pins_its_source_and_the_rest_keep_their_ratio():
    config = rules({"when": "gsm8k.exact_match < 0.05", "add": {"math": 0.2}}, bounds={"code": [0.35, 1.0]})
    shares, _ = apply_rules(config, {"gsm8k.exact_match": 0.0}, {"web": 0.6, "code": 0.4})
    # web : math stays 0.48 : 0.2 = 12 : 5 over the 0.65 that code's minimum leaves.
    assert_shares(shares, {"web": 0.65 * 12 / 17, "code": 0.35, "math": 0.65 * 5 / 17})


def test_scale_multiplies_one_source_and_renormalises_the_others():
    config = rules({"when": "heldout.math > 3.0", "scale": {"math": 2.0}})
    shares, _ = apply_rules(config, {"heldout.math": 3.5}, {"web": 0.5, "code": 0.3, "math": 0.2})
    assert_shares(shares, {"web": 0.375, "code": 0.225, "math": 0.4})


def test_move_is_capped_at_what_the_giver_has():
    config = rules({"when": "hellaswag.acc_norm >= 0.3", "move": {"from": "code", "to": "web", "amount": 0.2}})
    shares, _ = apply_rules(config, {"hellaswag.acc_norm": 0.3}, {"web": 0.95, "code": 0.05})
    assert_shares(shares, {"web": 1.0, "code": 0.0})


def test_a_ratio_condition_fires_only_above_its_threshold():
    config = rules({"name": "flip", "when": "heldout.code / heldout.web > 1.1",
                    "move": {"from": "web", "to": "code", "amount": 0.1}})
    fired, records = apply_rules(config, {"heldout.code": 5.5, "heldout.web": 4.8}, {"web": 0.7, "code": 0.3})
    assert_shares(fired, {"web": 0.6, "code": 0.4})
    assert records[0]["metrics"] == {"heldout.code": 5.5, "heldout.web": 4.8}
    quiet, records = apply_rules(config, {"heldout.code": 5.0, "heldout.web": 4.8}, {"web": 0.7, "code": 0.3})
    assert quiet == {"web": 0.7, "code": 0.3} and records == []


def test_rules_apply_in_order_each_to_the_shares_the_previous_left():
    config = rules({"name": "a", "when": "gsm8k.exact_match < 0.05", "add": {"math": 0.2}},
                   {"name": "b", "when": "heldout.web > 4", "move": {"from": "web", "to": "code", "amount": 0.08}})
    shares, records = apply_rules(config, {"gsm8k.exact_match": 0.0, "heldout.web": 4.5}, {"web": 0.6, "code": 0.4})
    assert [r["rule"] for r in records] == ["a", "b"]
    assert records[1]["shares_before"] == records[0]["shares_after"]
    assert_shares(shares, {"web": 0.40, "code": 0.40, "math": 0.2})


@pytest.mark.parametrize("metrics, reason", [
    ({"heldout.web": 4.8}, "heldout.code not in the last evaluation"),
    ({"heldout.code": float("nan"), "heldout.web": 4.8}, "heldout.code not in the last evaluation"),
    ({"heldout.code": 5.0, "heldout.web": 0.0}, "heldout.web is 0, so the ratio is undefined"),
])
def test_a_rule_whose_metric_cannot_be_read_does_not_fire_and_says_why(metrics, reason):
    config = rules({"name": "flip", "when": "heldout.code / heldout.web > 1.1",
                    "move": {"from": "web", "to": "code", "amount": 0.1}})
    shares, records = apply_rules(config, metrics, {"web": 0.7, "code": 0.3})
    assert shares == {"web": 0.7, "code": 0.3}
    assert [(r["rule"], r["fired"], r["reason"]) for r in records] == [("flip", False, reason)]


def test_in_loop_eval_lines_flatten_to_task_metric_and_heldout_names():
    # The shape run_in_loop appends to evals.jsonl, plus the held-out losses per source beside it.
    line = {"step": 40, "tokens": 40960, "stage": "one",
            "metrics": {"hellaswag": {"acc": 0.25, "acc_norm": 0.31}, "gsm8k": {"exact_match": float("nan")}},
            "items": {"hellaswag": 100, "gsm8k": 0}, "averages": {}, "seconds": 1.5,
            "heldout": {"web": 5.2, "code": 4}}
    assert flatten_eval_line(line) == {"hellaswag.acc": 0.25, "hellaswag.acc_norm": 0.31,
                                       "heldout.web": 5.2, "heldout.code": 4.0}


def test_eval_results_with_value_and_stderr_flatten_to_the_value():
    line = {"metrics": {"arc_easy": {"acc_norm": {"value": 0.42, "stderr": 0.01}}}}
    assert flatten_eval_line(line) == {"arc_easy.acc_norm": 0.42}
