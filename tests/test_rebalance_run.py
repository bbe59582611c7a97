"""Rules between stages in a real run: held-out loss read at the boundary, the next stage's shares changed,
the decision logged and stored, and a run killed at the boundary takes the same decision again."""

import json
from pathlib import Path

import pytest
import yaml

from smollab.data.heldout import split_streams
from smollab.data.mixture import MixtureSampler, Schedule
from smollab.data.shards import load_streams
from smollab.recipe import load_recipe
from tests.conftest import smollab
from tests.test_train import killed, losses

# web gives 0.2 of its share to code when code's held-out loss is above 0 (it always is): the rule fires
RULES = {"policy": "rules", "rules": [{"name": "more-code", "when": "heldout.code > 0",
                                       "move": {"from": "web", "to": "code", "amount": 0.2}}]}


def rebalancing(write_recipe, name: str, out: str):
    path = write_recipe(name, out=out, eval={"heldout": {"tokens": 260, "batch_size": 2}})
    tree = yaml.safe_load(path.read_text())
    tree["stages"][1]["rebalance"] = RULES
    path.write_text(yaml.safe_dump(tree))
    return path


def decisions(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "decisions.jsonl").read_text().splitlines()]


def test_a_rule_on_heldout_loss_changes_the_next_stage_and_the_samples_follow_it(write_recipe, tmp_path):
    recipe_path = rebalancing(write_recipe, "rules.yaml", "rules")
    smollab("train", str(recipe_path))
    run = tmp_path / "rules"
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [2, 4, 6, 8] and all(set(e["heldout"]) == {"web", "code", "math"} for e in evals)
    [fired] = decisions(run)
    assert fired["fired"] and fired["rule"] == "more-code" and fired["step"] == 4 and fired["evaluated_at"] == 4
    assert fired["metrics"] == {"heldout.code": evals[1]["heldout"]["code"]}
    assert fired["shares_before"] == pytest.approx({"web": 0.4, "code": 0.2, "math": 0.4})
    assert fired["shares_after"] == pytest.approx({"web": 0.2, "code": 0.4, "math": 0.4})

    meta = json.loads((run / "checkpoints" / "step-8" / "meta.json").read_text())
    recipe = load_recipe(recipe_path)
    streams, _ = split_streams(load_streams(recipe.shards_dir, ["web", "code", "math"]), 260, 64)
    sampler = MixtureSampler(recipe, streams, Schedule.from_json(meta["schedule"]))
    segment = sampler.segment_of_step(4)
    assert segment.decision == "rules: more-code" and segment.start_step == 4
    served = {}
    for step in range(4, 8):
        for sample in sampler.step_samples(step):
            served[sample.source] = served.get(sample.source, 0) + 1
    assert served == segment.counts(64, sampler.seed)  # 4 steps × 16 samples, counted = closed form
    assert served == pytest.approx({"web": 12.8, "code": 25.6, "math": 25.6}, abs=1)


def test_a_run_killed_at_the_boundary_takes_the_same_decision_and_trains_the_same(write_recipe, tmp_path):
    smollab("train", str(rebalancing(write_recipe, "straight.yaml", "straight")))
    interrupted = rebalancing(write_recipe, "killed.yaml", "killed")
    killed("after", 4, "train", str(interrupted))  # checkpoint 4 published; no export, eval or decision yet
    assert not (tmp_path / "killed" / "decisions.jsonl").exists()
    smollab("train", str(interrupted), "--resume")
    assert losses(tmp_path / "killed") == losses(tmp_path / "straight")
    assert decisions(tmp_path / "killed") == decisions(tmp_path / "straight")
