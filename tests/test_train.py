import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.conftest import REPO, python, smollab


STAGE_ONE = [{"name": "one", "until_tokens": 4 * 1024, "mixture": {"web": 0.7, "code": 0.3}}]


def losses(run: Path) -> list[tuple[int, float, int]]:
    return [(r["step"], r["loss"], r["data_crc"]) for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())]


def killed(mode: str, step: int, *args: str, torchrun: int = 0) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*python(torchrun), "tests/killpoint.py", mode, str(step), *args], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0, "the process was meant to be killed"
    if not torchrun:
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def test_resume_after_sigkill_reproduces_losses_bit_for_bit(write_recipe, tmp_path):
    straight = write_recipe("straight.yaml", out="straight")
    smollab("train", str(straight))
    interrupted = write_recipe("killed.yaml", out="killed")
    killed("after", 4, "train", str(interrupted))
    assert losses(tmp_path / "killed")[-1][0] == 3  # died right after publishing the step-4 checkpoint
    smollab("train", str(interrupted), "--resume")
    assert losses(tmp_path / "killed") == losses(tmp_path / "straight")
    assert len(losses(tmp_path / "straight")) == 8


def test_killed_checkpoint_write_leaves_previous_checkpoint_and_resume_uses_it(write_recipe, tmp_path):
    straight = write_recipe("straight.yaml", out="straight")
    smollab("train", str(straight))
    interrupted = write_recipe("killed.yaml", out="killed")
    killed("before", 4, "train", str(interrupted))
    ckpts = tmp_path / "killed" / "checkpoints"
    assert (ckpts / ".tmp-step-4").is_dir() and not (ckpts / "step-4").exists()
    assert (ckpts / "step-2" / "meta.json").exists()
    result = smollab("train", str(interrupted), "--resume")
    assert "resumed from" in result.stderr and "step-2" in result.stderr
    assert not (ckpts / ".tmp-step-4").exists()
    assert losses(tmp_path / "killed") == losses(tmp_path / "straight")


def test_elastic_resume_two_fsdp_ranks_then_one_continues_the_same_samples(write_recipe, tmp_path):
    straight = write_recipe("straight.yaml", out="straight")
    smollab("train", str(straight))
    elastic = write_recipe("elastic.yaml", out="elastic")
    killed("after", 4, "train", str(elastic), torchrun=2)
    meta = json.loads((tmp_path / "elastic" / "checkpoints" / "step-4" / "meta.json").read_text())
    assert meta["world"] == 2
    smollab("train", str(elastic), "--resume")
    a, b = losses(tmp_path / "straight"), losses(tmp_path / "elastic")
    assert [(s, crc) for s, _, crc in a] == [(s, crc) for s, _, crc in b]  # same global sample sequence
    assert [x for _, x, _ in b] == pytest.approx([x for _, x, _ in a], rel=1e-4)  # same optimisation


def test_fsdp2_ranks_with_compiled_blocks_train_like_one_eager_process(write_recipe, tmp_path):
    smollab("train", str(write_recipe("eager.yaml", out="eager", stages=STAGE_ONE)))
    smollab("train", str(write_recipe("sharded.yaml", out="sharded", stages=STAGE_ONE,
                                      train={"compile": True, "profile": {"start_step": 1, "steps": 2}})), torchrun=2)
    eager, sharded = losses(tmp_path / "eager"), losses(tmp_path / "sharded")
    assert [(s, crc) for s, _, crc in sharded] == [(s, crc) for s, _, crc in eager]
    assert [x for _, x, _ in sharded] == pytest.approx([x for _, x, _ in eager], rel=1e-4)
    # FSDP2's all-gathers and reduce-scatters are found by name: the profile puts them in their own bucket
    assert json.loads((tmp_path / "sharded" / "profile" / "summary-rank0.json").read_text())["communication"] > 0


def test_hf_export_loads_with_automodel_and_matches_training_logits(write_recipe, tmp_path):
    from smollab.recipe import load_recipe
    from smollab.train import checkpoint
    from smollab.train.loop import build_model, make_optimizer, model_config
    from smollab.train.parallel import init_runtime
    from smollab.tokenizer import load_tokenizer

    path = write_recipe()
    smollab("train", str(path))
    recipe = load_recipe(path)
    tokenizer = load_tokenizer(recipe.tokenizer.source)
    model = build_model(recipe, model_config(recipe, len(tokenizer)))
    checkpoint.load(tmp_path / "run" / "checkpoints" / "step-8", model, make_optimizer(model, recipe, init_runtime("cpu")))
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "hf" / "step-8")
    ids = torch.tensor([tokenizer("def add(a, b):\n    return a + b\n").input_ids])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, exported(input_ids=ids).logits)
    generated = exported.generate(ids, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 5


def test_log_lines_carry_stage_tokens_loss_per_source_lr_and_mfu(write_recipe, tmp_path):
    smollab("train", str(write_recipe()))
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == ["one"] * 4 + ["two"] * 4
    assert records[-1]["tokens"] == 8 * 1024
    assert set(records[0]["loss_per_source"]) == {"web", "code"} and "math" in records[-1]["loss_per_source"]
    assert records[-1]["lr"] == 0.0 and records[1]["lr"] == pytest.approx(3e-3)
    assert all(0 < r["mfu"] < 1 and r["tok_s"] > 0 and r["precision"] == "float32" for r in records)
    step_s = [1024 / r["tok_s"] for r in records]
    assert all(0 < r["data_s"] < s for r, s in zip(records, step_s))  # the data path is timed inside the step
    assert (tmp_path / "run" / "tensorboard").is_dir()


def test_compiled_model_and_loss_train_like_eager(write_recipe, tmp_path):
    smollab("train", str(write_recipe("eager.yaml", out="eager", stages=STAGE_ONE)))
    smollab("train", str(write_recipe("compiled.yaml", out="compiled", stages=STAGE_ONE, train={"compile": True})))
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert [(s, crc) for s, _, crc in compiled] == [(s, crc) for s, _, crc in eager]
    assert [x for _, x, _ in compiled] == pytest.approx([x for _, x, _ in eager], rel=1e-4)


def test_compiled_runs_on_two_threads_are_bit_reproducible(write_recipe, tmp_path):
    # with train.deterministic=false the two runs part at step 2 (Inductor's atomic-add embedding gradient)
    for out in ("first", "second"):
        smollab("train", str(write_recipe(f"{out}.yaml", out=out, stages=STAGE_ONE, train={"compile": True})), threads=2)
    assert losses(tmp_path / "first") == losses(tmp_path / "second")


def test_profile_window_records_its_steps_and_accounts_for_their_time(write_recipe, tmp_path):
    smollab("train", str(write_recipe(stages=STAGE_ONE, train={"profile": {"start_step": 1, "steps": 2}})))
    profile = tmp_path / "run" / "profile"
    summary = json.loads((profile / "summary-rank0.json").read_text())
    assert summary["steps"] == [1, 2] and summary["tokens"] == 2 * 1024
    # the real op names torch emits land in the GEMM and attention buckets; the buckets partition the wall time
    assert summary["gemm"] > 0 and summary["attention"] > 0 and summary["communication"] == 0  # one process
    buckets = ("gemm", "attention", "compiled_kernels", "communication", "other_ops", "outside_ops")
    assert sum(summary[key] for key in buckets) == pytest.approx(summary["wall_s"], rel=0.05)
    assert json.loads((profile / "trace-rank0.json").read_text())["traceEvents"]
    assert "aten::mm" in (profile / "ops-rank0.txt").read_text()
    assert [step for step, _, _ in losses(tmp_path / "run")] == [0, 1, 2, 3]


def test_profile_buckets_name_compiled_kernels_from_graph_calls_or_their_own_kernel_names():
    from smollab.train.profile import bucket_of

    # the graph call, and (with TORCHINDUCTOR_CPP_ENABLE_KERNEL_PROFILE=1) the kernels inside it, from a real op table
    assert bucket_of("## Call CompiledFxGraph fgmfhyq5stvt2n3zpwie4cvb5qja") == "compiled_kernels"
    assert bucket_of("graph_0_cpp_fused__to_copy__unsafe_view_mul_silu_silu_backward_7") == "compiled_kernels"
    assert bucket_of("aten::mm") == "gemm" and bucket_of("aten::fill_") == "other_ops"


def test_continued_pretraining_from_real_smollm2_lowers_loss_on_its_data(tmp_path):
    from smollab.data.tokenize import tokenize_recipe
    from smollab.recipe import validate_tree
    from smollab.train.loop import train

    tree = {
        "name": "anneal", "out": str(tmp_path / "anneal"),
        "model": {"init_from": "smollm2-135m-instruct"},
        "tokenizer": {"source": "smollm2"},
        "data": {"sources": {"wiki": {"bundled": "edu_wikipedia", "limit": 3}}},
        "stages": [{"name": "anneal", "until_tokens": 3 * 128, "mixture": {"wiki": 1.0}}],
        "optim": {"lr": 2e-4},
        "schedule": {"warmup_steps": 0, "decay": {"fraction": 0.0}},
        "batch": {"seq_len": 64, "tokens_per_step": 128, "micro_batch": 2},
        "train": {"precision": "fp32", "device": "cpu"},
    }
    recipe = validate_tree(tree)
    tokenize_recipe(recipe, workers=1)
    train(recipe)
    records = [json.loads(line) for line in (tmp_path / "anneal" / "log.jsonl").read_text().splitlines()]
    assert records[0]["params"] == 134_515_008
    # the same windows, scored by the real model before and after the few steps
    from smollab.data.mixture import MixtureSampler
    from smollab.data.shards import load_streams

    sampler = MixtureSampler(recipe, load_streams(recipe.shards_dir, ["wiki"]))
    batch = torch.from_numpy(np.stack([sampler.tokens(s) for step in range(3) for s in sampler.step_samples(step)]))

    def loss(model_dir) -> float:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        with torch.no_grad():
            return model(input_ids=batch, labels=batch).loss.item()  # HF shifts the labels itself

    from smollab import pretrained

    before, after = loss(pretrained.resolve("smollm2-135m-instruct")), loss(tmp_path / "anneal" / "hf" / "step-3")
    assert after < before - 0.05
    shutil.rmtree(tmp_path / "anneal")


def test_in_loop_eval_runs_after_each_checkpoint_and_leaves_losses_unchanged(write_recipe, tmp_path):
    smollab("train", str(write_recipe("plain.yaml", out="plain")))
    smollab("train", str(write_recipe("evals.yaml", out="evals", eval={"tasks": ["arc_easy", "piqa"], "limit": 3})))
    assert losses(tmp_path / "evals") == losses(tmp_path / "plain")
    lines = [json.loads(line) for line in (tmp_path / "evals" / "evals.jsonl").read_text().splitlines()]
    assert [(line["step"], line["stage"], line["tokens"]) for line in lines] == [(2, "one", 2048), (4, "one", 4096),
                                                                               (6, "two", 6144), (8, "two", 8192)]
    assert lines[0]["items"] == {"arc_easy": 3, "piqa": 3}
