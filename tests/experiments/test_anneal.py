"""Annealing: a child run branches from a parent checkpoint at its LR and decays to the final LR on a new mixture."""

import json

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from typer.testing import CliRunner

from smollab.cli import app
from smollab.data.heldout import training_streams
from smollab.data.mixture import MixtureSampler
from smollab.errors import SmollabError
from smollab.experiments.anneal import anneal_recipe, compose, parse_mixture
from smollab.recipe import load_recipe
from smollab.train.schedule import WSD
from tests.conftest import recipe_tree, smollab


@pytest.fixture(scope="module")
def parent(tmp_path_factory, shards):
    """The conftest's 8-step micro run (checkpoints at steps 2, 4, 6, 8; decay over steps 6–7) with held-out
    loss per source, trained once."""
    root = tmp_path_factory.mktemp("anneal-parent")
    tree = recipe_tree(root / "parent", *shards, eval={"heldout": {"tokens": 130}})
    (root / "parent.yaml").write_text(yaml.safe_dump(tree))
    smollab("train", str(root / "parent.yaml"))
    return root / "parent"


def log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_anneal_starts_from_the_parents_weights_and_lr_and_decays_to_the_final_lr(parent, tmp_path):
    smollab("anneal", str(parent), "--step", "4", "--tokens", "4096", "--mixture", "math=0.6", "--out", str(tmp_path / "child"))
    child = load_recipe(tmp_path / "child" / "recipe.resolved.yaml")
    parent_recipe = load_recipe(parent / "recipe.resolved.yaml")
    parent_lr = WSD(parent_recipe.schedule, parent_recipe.optim.lr, 8).lr(4)
    assert child.anneal.from_run == str(parent.resolve()) and child.anneal.step == 4 and child.anneal.optimizer
    # the rest of the mixture is the parent's stage-one mixture (web 0.7, code 0.3) scaled to 40%
    assert child.stages[0].mixture == pytest.approx({"math": 0.6, "web": 0.28, "code": 0.12})
    lrs = [r["lr"] for r in log(tmp_path / "child")]
    assert len(lrs) == 4 and lrs[-1] == 0.0 and child.optim.lr == parent_lr
    assert lrs == pytest.approx([parent_lr * (1 - k / 4) for k in range(1, 5)])  # linear from the parent's LR, as WSD decays
    # the first step's loss is the parent's step-4 weights scored on the child's first samples
    sampler = MixtureSampler(child, training_streams(child, ["web", "code", "math"])[0])
    batch = torch.from_numpy(np.stack([sampler.tokens(s) for s in sampler.step_samples(0)]))
    model = AutoModelForCausalLM.from_pretrained(parent / "hf" / "step-4", dtype=torch.float32).eval()
    with torch.no_grad():
        expected = model(batch, labels=batch).loss.item()  # HF shifts: the seq_len next-token predictions training scores
    assert log(tmp_path / "child")[0]["loss"] == pytest.approx(expected, abs=1e-5)
    mixture = smollab("mixture", str(tmp_path / "child")).stdout  # a normal run directory
    assert "anneal" in mixture and "math" in mixture


def test_anneal_from_fresh_moments_differs_from_the_kept_ones_after_the_first_step(parent, tmp_path):
    for name, extra in (("kept", []), ("fresh", ["--fresh-optimizer"])):
        smollab("anneal", str(parent), "--step", "4", "--tokens", "2048", "--mixture", "code=1", "--out", str(tmp_path / name), *extra)
    kept, fresh = log(tmp_path / "kept"), log(tmp_path / "fresh")
    assert kept[0]["loss"] == fresh[0]["loss"]  # the same weights
    assert kept[1]["loss"] != fresh[1]["loss"]  # AdamW moments carried over change the first update
    assert not load_recipe(tmp_path / "fresh" / "recipe.resolved.yaml").anneal.optimizer
    # trained on code alone, yet scored on every source the parent trained on: anneals compare on one held-out set
    evals = [json.loads(line) for line in (tmp_path / "kept" / "evals.jsonl").read_text().splitlines()]
    assert set(evals[-1]["heldout"]) == {"web", "code", "math"}


def test_dry_run_prints_the_child_plan_and_trains_nothing(parent, tmp_path):
    result = CliRunner().invoke(app, ["anneal", str(parent), "--tokens", "2048", "--mixture", "math=0.5,parent=0.5",
                                      "--out", str(tmp_path / "child"), "--step", "2", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "anneal of" in result.output and "at step 2" in result.output and "math 50%" in result.output
    assert not (tmp_path / "child").exists()


def test_mixture_syntax_and_composition():
    assert parse_mixture("math=0.6") == {"math": 0.6}
    assert compose({"math": 0.6}, {"web": 0.5, "math": 0.5}) == pytest.approx({"math": 0.8, "web": 0.2})
    assert compose({"math": 0.5, "parent": 0.5}, {"web": 1.0}) == pytest.approx({"math": 0.5, "web": 0.5})
    assert compose({"math": 1.0}, {"web": 1.0}) == {"math": 1.0}
    with pytest.raises(SmollabError, match="do not add up to 1"):
        compose({"math": 0.7, "parent": 0.5}, {"web": 1.0})
    with pytest.raises(SmollabError, match="cannot read 'math'"):
        parse_mixture("math")


def test_branching_errors_name_the_field_and_the_fix(parent, tmp_path):
    with pytest.raises(SmollabError, match=r"anneal.step: .* has no checkpoint at step 3; it keeps steps 2, 4, 6, 8"):
        anneal_recipe(parent, "2048", "math=0.5", step=3)
    with pytest.raises(SmollabError, match="LR is already its final 0"):
        anneal_recipe(parent, "2048", "math=0.5", step=8)
    with pytest.raises(SmollabError, match="unknown source 'owm'"):
        anneal_recipe(parent, "2048", "owm=0.5", step=4)
    child = anneal_recipe(parent, "2048", "owm=0.5", step=4, overrides=["data.sources.owm.bundled=math_gsm8k_train"])
    assert child.stages[0].mixture == pytest.approx({"owm": 0.5, "web": 0.35, "code": 0.15})  # a new candidate, declared
