"""`smollab sft`: labels are the assistant mask, packed rows keep conversations apart, a few steps lower the
held-out loss and leave a chat model; `--dry-run` plans without weights; recipes validate; errors are one line."""

import json

import pytest
import torch
import typer
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from smollab import pretrained
from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.post.config import SFTRecipe, load_post_recipe
from smollab.post.conversations import load_conversations
from smollab.post.sft import METHOD, datasets, sft
from smollab.post.template import IM_END, SMOLLM2_CHAT_TEMPLATE, assistant_mask, render, with_chat_template
from smollab.post.trainer_common import prepare_run_dir, run, training_arguments
from tests.conftest import REPO
from tests.eval.conftest import tiny_llama


@pytest.fixture(scope="module")
def tokenizer():
    return with_chat_template(AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny random Llama (1,024 positions) with the bundled SmolLM2 tokenizer, saved as an HF directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def recipe_tree(model_dir, out, **train) -> dict:
    """Real bundled conversations, cut to 160 tokens; batches of 4 rows in micro-batches of 2, fp32 on the CPU."""
    return {
        "name": "test-sft", "out": str(out), "model": {"init_from": str(model_dir)},
        "data": {"sources": {"oasst": {"bundled": "sft_oasst_en100", "limit": 24},
                             "seeds": {"bundled": "sft_self_instruct_seed_tasks", "limit": 48}},
                 "max_length": 160, "heldout_fraction": 0.15},
        "train": {"epochs": 1, "lr": 3e-3, "global_batch": 4, "micro_batch": 2, "precision": "fp32", "device": "cpu",
                  "seed": 0, **train},
    }


@pytest.fixture(scope="module")
def packed(model_dir, tokenizer, tmp_path_factory):
    """Every micro-batch the SFT trainer builds in an epoch, and the assistant mask of each training conversation."""
    recipe = SFTRecipe.model_validate(recipe_tree(model_dir, tmp_path_factory.mktemp("batch")))
    data = load_conversations(recipe.data, tokenizer)
    train_set, _ = datasets(data, tokenizer)
    arguments = training_arguments(recipe, torch.device("cpu"), False, 1, resumed=False, evaluates=False)
    trainer = METHOD.build_trainer(recipe, AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, train_set, None,
                                   arguments)
    masks = {tuple(m.input_ids): m.labels_mask for m in (assistant_mask(c.messages, tokenizer) for c in data.train)}
    return list(trainer.get_train_dataloader()), masks


def segments(batch) -> list[tuple[int, int]]:
    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist() + [len(positions)]
    return list(zip(starts, starts[1:]))


def test_labels_are_exactly_the_assistant_mask(packed):
    batches, masks = packed
    seen = []
    for batch in batches:
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        for start, end in segments(batch):
            mask = masks[tuple(ids[start:end])]  # each packed example is one whole training conversation
            assert labels[start:end] == [token if keep else -100 for token, keep in zip(ids[start:end], mask)]
            seen.append(tuple(ids[start:end]))
        assert 0 < sum(label != -100 for label in labels) < len(labels)
    assert sorted(seen) == sorted(masks)  # an epoch trains on every conversation once
    assert max(len(segments(batch)) for batch in batches) >= 4  # micro-batches of 2 rows share several


def test_packed_conversations_never_attend_to_each_other(packed, tokenizer):
    batches, _ = packed
    batch = max(batches, key=lambda b: len(segments(b)))
    model = tiny_llama(tokenizer)  # sdpa, fp32, eval mode
    # use_cache=False as SFTTrainer.compute_loss passes it: transformers derives the packed mask only without a KV cache
    inputs = {key: value for key, value in batch.items() if key != "labels"} | {"use_cache": False}
    with torch.no_grad():
        logits = model(**inputs).logits[0]
        for start, end in segments(batch):
            assert batch["position_ids"][0, start:end].tolist() == list(range(end - start))
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
            assert (alone - logits[start:end]).abs().max() < 1e-5
        assert (model(input_ids=batch["input_ids"]).logits[0] - logits).abs().max() > 1e-2  # the mask matters


@pytest.fixture(scope="module")
def sft_run(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "run"
    recipe = SFTRecipe.model_validate(recipe_tree(model_dir, out, eval_every_steps=4))
    return recipe, run(recipe, METHOD)


def test_a_few_steps_lower_the_heldout_loss_and_leave_a_chat_model(sft_run, tokenizer):
    recipe, hf_dir = sft_run
    out = recipe.out_dir
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"step", "epoch", "loss", "lr", "grad_norm", "tokens", "tok_s"} <= log[-1].keys()
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    last = log[-1]["step"]
    assert [line["step"] for line in evals] == sorted({0, *range(4, last + 1, 4), last})
    assert evals[-1]["heldout"]["loss"] < evals[0]["heldout"]["loss"] - 0.05
    report = json.loads((out / "data_report.json").read_text())
    assert report["sources"].keys() == {"oasst", "seeds"} and report["heldout"]["count"] > 0
    assert yaml.safe_load((out / "recipe.resolved.yaml").read_text())["data"]["max_length"] == 160

    assert hf_dir == out / "hf" / f"step-{log[-1]['step']}" and pretrained.resolve(out) == str(hf_dir)
    saved = AutoTokenizer.from_pretrained(hf_dir)
    messages = [{"role": "user", "content": "Hi there"}]
    assert saved.chat_template == SMOLLM2_CHAT_TEMPLATE
    assert saved.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == render(
        messages, tokenizer, add_generation_prompt=True)
    assert saved.eos_token == IM_END
    generation = AutoModelForCausalLM.from_pretrained(hf_dir).generation_config
    assert generation.eos_token_id == saved.convert_tokens_to_ids(IM_END)

    with pytest.raises(SmollabError, match="holds a run; use --resume to continue it, or --overwrite"):
        prepare_run_dir(recipe, resume=False, overwrite=False)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(sft)
    app.command("unused")(lambda: None)  # two commands: typer keeps `sft` as a subcommand
    return app


def test_dry_run_plans_the_same_steps_without_weights(sft_run, model_dir, tmp_path):
    recipe, hf_dir = sft_run
    config_only = tmp_path / "config-only"  # the model's config and tokenizer, no weights to load
    config_only.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (config_only / name).write_bytes((model_dir / name).read_bytes())
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(recipe_tree(config_only, tmp_path / "never", eval_every_steps=4)))
    result = CliRunner().invoke(cli(), ["sft", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    data = load_conversations(recipe.data, with_chat_template(AutoTokenizer.from_pretrained(model_dir)))
    assert f"{len(data.train):,} conversations" in result.output and "weights not loaded" in result.output
    steps = next(line for line in result.output.splitlines() if "per epoch ×" in line)
    assert steps.split("=")[1].strip(" │") == f"{int(hf_dir.name.removeprefix('step-')):,}"  # the steps the run took
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("name, lr, dataset", [("smollm2-1.7b-sft", 3e-4, "HuggingFaceTB/smoltalk"),
                                               ("smollm2-360m-sft", 1e-3, "HuggingFaceTB/smol-smoltalk"),
                                               ("smollm2-135m-sft", 1e-3, "HuggingFaceTB/smol-smoltalk")])
def test_paper_recipes_carry_the_papers_values(name, lr, dataset):
    recipe = load_post_recipe(REPO / "recipes" / f"{name}.yaml", [], SFTRecipe)
    (source,) = recipe.data.sources.values()
    assert source.hf == dataset and recipe.data.max_length == 8192
    assert (recipe.train.lr, recipe.train.epochs, recipe.train.schedule, recipe.train.warmup_ratio,
            recipe.train.global_batch) == (lr, 2, "cosine", 0.1, 128)


def test_the_demo_recipe_dry_runs_on_its_bundled_data():
    result = CliRunner().invoke(cli(), ["sft", str(REPO / "recipes" / "demo-sft.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "conversations (" in result.output and "per epoch ×" in result.output


def test_dry_run_of_a_hub_recipe_prints_the_plan_it_can():
    result = CliRunner().invoke(cli(), ["sft", str(REPO / "recipes" / "smollm2-135m-sft.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "not read: smol_smoltalk stream from the Hugging Face hub" in text
    assert "128 rows per step" in text and "cosine, peak 0.001" in text


@pytest.mark.parametrize("override, message", [
    ("train.lr=-1", r"recipes/demo-sft.yaml: train.lr: Input should be greater than 0"),
    ("train.learning_rate=1e-4", r"train.learning_rate: unknown field"),
    ("train.micro_batch=3", r"train.global_batch: \d+ is not divisible by train.micro_batch 3"),
    ("eval.tasks=[ifevil]", r"eval.tasks: unknown task 'ifevil'"),
    ("data.sources.oasst.bundled=nope", r"data.sources.oasst.bundled: no bundled sample 'nope'"),
    ("data.max_length=2048", r"data.max_length: 2,048 exceeds the 1,024 positions of model"),
    ("model.init_from=/no/such/model", r"model.init_from: model '/no/such/model' not found"),
])
def test_a_bad_field_is_one_line_naming_it(override, message, model_dir, tmp_path):
    with pytest.raises(SmollabError, match=message) as caught:
        recipe = load_post_recipe(REPO / "recipes" / "demo-sft.yaml",
                                  [f"model.init_from={model_dir}", f"out={tmp_path / 'run'}", override], SFTRecipe)
        run(recipe, METHOD)
    assert "\n" not in str(caught.value)
