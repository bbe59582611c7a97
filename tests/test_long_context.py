"""Context extension as a stage: a longer seq_len and a new RoPE θ, end to end (sampler, model, export, resume)."""

import json
import shutil

from transformers import AutoConfig

from smollab.data.heldout import training_streams
from smollab.data.mixture import MixtureSampler
from smollab.recipe import load_recipe
from smollab.train.loop import train
from tests.conftest import smollab
from tests.test_train import losses

EXTEND = {"name": "long", "until_tokens": 8 * 1024, "mixture": {"web": 0.5, "math": 0.5}, "seq_len": 128, "rope_theta": 50000.0}


def extension_recipe(write_recipe, out):
    """Stage one at 64 tokens on a model of 64 positions, stage two extended to 128 tokens with θ 10k → 50k."""
    return write_recipe(f"{out}.yaml", out=out, model={"preset": "micro", "max_position_embeddings": 64},
                        stages=[{"name": "one", "until_tokens": 4 * 1024, "mixture": {"web": 0.7, "code": 0.3}}, EXTEND])


def test_a_stage_of_longer_sequences_and_new_theta_trains_and_exports_the_extended_context(write_recipe, tmp_path):
    recipe = load_recipe(extension_recipe(write_recipe, "run"))
    sampler = MixtureSampler(recipe, training_streams(recipe, ["web", "code", "math"])[0])
    assert {len(sampler.tokens(s)) for s in sampler.step_samples(3)} == {65}
    assert {len(sampler.tokens(s)) for s in sampler.step_samples(4)} == {129}  # the sampler serves the new length
    assert len(sampler.step_samples(4)) == 1024 // 128
    train(recipe)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log] == ["one"] * 4 + ["long"] * 4 and all(r["loss"] < 10 for r in log)
    before, after = (AutoConfig.from_pretrained(tmp_path / "run" / "hf" / f"step-{s}") for s in (4, 8))
    assert (before.max_position_embeddings, before.rope_parameters["rope_theta"]) == (64, 10000.0)
    assert (after.max_position_embeddings, after.rope_parameters["rope_theta"]) == (128, 50000.0)


def test_resuming_inside_the_extension_stage_trains_as_the_straight_run(write_recipe, tmp_path):
    straight = extension_recipe(write_recipe, "straight")
    smollab("train", str(straight))
    resumed = extension_recipe(write_recipe, "resumed")
    smollab("train", str(resumed))
    for leftover in ("checkpoints/step-8", "hf/step-8"):  # as if killed after the step-6 checkpoint
        shutil.rmtree(tmp_path / "resumed" / leftover)
    smollab("train", str(resumed), "--resume")
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")
    config = AutoConfig.from_pretrained(tmp_path / "resumed" / "hf" / "step-8")
    assert (config.max_position_embeddings, config.rope_parameters["rope_theta"]) == (128, 50000.0)


def test_new_theta_changes_the_live_rotary_frequencies_as_a_fresh_model_would_have_them():
    from transformers import AutoModelForCausalLM

    from smollab.presets import preset_config
    from smollab.train.loop import set_rope_theta

    model = AutoModelForCausalLM.from_config(preset_config("micro", 512))
    rotary = model.model.rotary_emb
    before = rotary.inv_freq.tolist()
    set_rope_theta(model, 130000.0)
    fresh = AutoModelForCausalLM.from_config(model.config).model.rotary_emb
    assert model.model.rotary_emb is rotary and fresh.config.rope_parameters["rope_theta"] == 130000.0
    assert rotary.inv_freq.tolist() == fresh.inv_freq.tolist() != before  # lower frequencies: longer wavelengths
    assert all(new <= old for new, old in zip(rotary.inv_freq.tolist(), before))
