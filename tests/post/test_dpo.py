"""`smollab dpo`: the reference is precomputed and never held in memory, a few steps raise the chosen-minus-rejected
margin on the training pairs, reward accuracy and margins are logged and measured on held-out pairs."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from smollab.post.config import DPORecipe, load_post_recipe
from smollab.post.dpo import METHOD, datasets, dpo
from smollab.post.preferences import load_preferences
from smollab.post.template import render
from smollab.post.trainer_common import run, training_arguments
from tests.conftest import REPO
from tests.post.test_sft import model_dir, tokenizer  # noqa: F401 (fixtures)

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """Short pairs where the chosen reply names the colour the prompt asks about and the rejected one refuses."""
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    rows = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"Which colour is item {i}?"}],
             "chosen": [{"role": "assistant", "content": f"Item {i} is {COLOURS[i % len(COLOURS)]}."}],
             "rejected": [{"role": "assistant", "content": "I will not answer questions about items."}]}
            for i in range(24)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def recipe(model_dir, pairs_file, out, **train) -> DPORecipe:
    return DPORecipe.model_validate({
        "name": "test-dpo", "out": str(out), "model": {"init_from": str(model_dir)},
        "data": {"sources": {"colours": {"files": [str(pairs_file)]}}, "max_length": 96, "max_prompt_length": 48,
                 "heldout_fraction": 0.2},
        "train": {"epochs": 1, "lr": 3e-3, "beta": 0.5, "global_batch": 4, "micro_batch": 2, "precision": "fp32",
                  "device": "cpu", "seed": 0, **train},
    })


def test_reference_log_probs_are_precomputed_and_no_reference_model_is_kept(model_dir, pairs_file, tokenizer, tmp_path):
    planned = recipe(model_dir, pairs_file, tmp_path / "run")
    train_set, heldout_set = datasets(load_preferences(planned.data, tokenizer), tokenizer)
    arguments = training_arguments(planned, torch.device("cpu"), False, 1, resumed=False, evaluates=True)
    trainer = METHOD.build_trainer(planned, AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, train_set,
                                   heldout_set, arguments)
    assert trainer.ref_model is None
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(trainer.train_dataset.column_names)
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(trainer.eval_dataset.column_names)


def completion_logp(model, tokenizer, prompt, completion) -> float:
    context = tokenizer(render(prompt, tokenizer, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    ids = tokenizer(render(prompt + completion, tokenizer), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logps = model(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
    return float(sum(logps[i - 1, ids[i]] for i in range(len(context), len(ids))))


def mean_margin(model_path, tokenizer, pairs) -> float:
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    margins = [completion_logp(model, tokenizer, p.prompt, p.chosen)
               - completion_logp(model, tokenizer, p.prompt, p.rejected) for p in pairs]
    return sum(margins) / len(margins)


def test_a_few_steps_raise_the_margin_and_log_rewards(model_dir, pairs_file, tokenizer, tmp_path):
    trained = recipe(model_dir, pairs_file, tmp_path / "run", eval_every_steps=4)
    hf_dir = run(trained, METHOD)
    pairs = load_preferences(trained.data, tokenizer).train
    assert mean_margin(hf_dir, tokenizer, pairs) > mean_margin(model_dir, tokenizer, pairs) + 1.0

    log = [json.loads(line) for line in (trained.out_dir / "log.jsonl").read_text().splitlines()]
    assert {"loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "tokens", "tok_s"} <= log[-1].keys()
    assert log[-1]["rewards/margins"] > 0
    evals = [json.loads(line) for line in (trained.out_dir / "evals.jsonl").read_text().splitlines()]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == log[-1]["step"]
    assert evals[0]["heldout"]["rewards/margins"] == 0.0  # before training the policy is the reference
    for line in evals:
        assert {"rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"} <= line["heldout"].keys()


def cli():
    import typer

    app = typer.Typer()
    app.command()(dpo)
    app.command("unused")(lambda: None)
    return app


@pytest.mark.parametrize("name", ["smollm2-1.7b-dpo", "smollm2-360m-dpo", "smollm2-135m-dpo"])
def test_paper_recipes_carry_the_papers_values_and_dry_run(name):
    loaded = load_post_recipe(REPO / "recipes" / f"{name}.yaml", [], DPORecipe)
    (source,) = loaded.data.sources.values()
    assert (source.hf, source.split) == ("HuggingFaceH4/ultrafeedback_binarized", "train_prefs")
    assert loaded.model.init_from == f"runs/{name.removesuffix('-dpo')}-sft"
    assert (loaded.train.beta, loaded.train.lr, loaded.train.epochs, loaded.data.max_length,
            loaded.data.max_prompt_length) == (0.5, 1e-6, 2, 1024, 512)
    result = CliRunner().invoke(cli(), ["dpo", str(REPO / "recipes" / f"{name}.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "ultrafeedback stream from the Hugging Face hub" in " ".join(result.output.replace("│", " ").split())


def test_the_demo_recipe_dry_runs_on_its_bundled_data():
    result = CliRunner().invoke(cli(), ["dpo", str(REPO / "recipes" / "demo-dpo.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "pairs (" in result.output and "per epoch ×" in result.output
