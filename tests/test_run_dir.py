"""A run directory's history is never lost: re-runs refuse, damaged checkpoints are skipped, exports agree."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import smollab
from tests.test_train import losses


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shards) -> tuple[Path, Path]:
    """(recipe, run dir) of one finished 8-step run with checkpoints at steps 2, 4, 6, 8; never modified."""
    import yaml

    from tests.conftest import recipe_tree

    root = tmp_path_factory.mktemp("finished")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_tree(root / "run", *shards)))
    smollab("train", str(recipe))
    return recipe, root / "run"


def copy_run(finished, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the finished run (recipe pointing at it) to damage."""
    import yaml

    recipe, run = finished
    shutil.copytree(run, tmp_path / "run")
    tree = yaml.safe_load(recipe.read_text()) | {"out": str(tmp_path / "run")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tree))
    return tmp_path / "recipe.yaml", tmp_path / "run"


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_training_again_on_a_finished_run_refuses_in_one_line_and_touches_nothing(finished, tmp_path):
    recipe, run = copy_run(finished, tmp_path)
    before = snapshot(run)
    result = smollab("train", str(recipe), check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds a run; use --resume to continue it, or --overwrite to start over" in lines[0]
    assert snapshot(run) == before


def test_overwrite_starts_the_run_over_and_reproduces_it_without_transformers_progress_bars(finished, tmp_path):
    recipe, run = copy_run(finished, tmp_path)
    (run / "checkpoints" / "step-8" / "stale").write_text("from the old run")
    (run / "tokenizer").mkdir()
    (run / "tokenizer" / "kept").write_text("inputs of the run survive --overwrite")
    # in-loop eval loads each export: the path that printed transformers' "Loading weights" bar
    result = smollab("train", str(recipe), "--overwrite", "eval.tasks=[arc_easy]", "eval.limit=2")
    assert losses(run) == losses(finished[1])
    assert not (run / "checkpoints" / "step-8" / "stale").exists() and (run / "tokenizer" / "kept").exists()
    assert len((run / "evals.jsonl").read_text().splitlines()) == 4
    assert "Writing model shards" not in result.stderr and "Loading weights" not in result.stderr


def _delete_a_distcp(step: Path) -> None:
    next(step.glob("*.distcp")).unlink()


def _truncate_metadata(step: Path) -> None:
    metadata = step / ".metadata"
    metadata.write_bytes(metadata.read_bytes()[:100])


def _remove_meta(step: Path) -> None:
    (step / "meta.json").unlink()


@pytest.mark.parametrize("damage", [_delete_a_distcp, _truncate_metadata, _remove_meta],
                         ids=["distcp-deleted", "metadata-truncated", "meta-removed"])
def test_resume_skips_a_damaged_newest_checkpoint_names_it_and_finishes_the_same_run(finished, tmp_path, damage):
    recipe, run = copy_run(finished, tmp_path)
    damage(run / "checkpoints" / "step-8")
    result = smollab("train", str(recipe), "--resume")
    assert "checkpoint" in result.stderr and "step-8 is unreadable" in result.stderr
    assert "resumed from" in result.stderr and "step-6" in result.stderr
    assert losses(run) == losses(finished[1])  # steps 6 and 7 redone, the same as the first time
    assert (run / "checkpoints" / "step-8" / "meta.json").exists()  # republished over the damaged one
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_resume_with_every_checkpoint_damaged_is_one_line_naming_them(finished, tmp_path):
    recipe, run = copy_run(finished, tmp_path)
    for step in (run / "checkpoints").glob("step-*"):
        _remove_meta(step)
    result = smollab("train", str(recipe), "--resume", check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning" not in line]
    assert result.returncode == 2 and len(lines) == 1
    assert "no readable checkpoint" in lines[0] and "step-2: it has no meta.json" in lines[0]


def test_out_pointing_at_a_file_is_one_line(write_recipe, tmp_path):
    (tmp_path / "taken").write_text("not a directory")
    result = smollab("train", str(write_recipe()), "--out", str(tmp_path / "taken"), check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "is a file, not a directory" in lines[0]


def test_cuda_device_without_cuda_is_one_line_and_the_device_is_logged(write_recipe, finished):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = smollab("train", str(write_recipe(train={"device": "cuda"})), check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "train.device cuda: this machine has no CUDA device" in lines[0]
    records = [json.loads(line) for line in (finished[1] / "log.jsonl").read_text().splitlines()]
    assert {r["device"] for r in records} == {"cpu"}


def test_export_tokenizer_and_config_name_the_same_bos_eos_the_training_separator(finished):
    from transformers import AutoConfig, AutoTokenizer

    export = finished[1] / "hf" / "step-8"
    config, tokenizer = AutoConfig.from_pretrained(export), AutoTokenizer.from_pretrained(export)
    generation = json.loads((export / "generation_config.json").read_text())
    separator = tokenizer.convert_tokens_to_ids("<|endoftext|>")  # data.eos, what training wrote between documents
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    assert config.eos_token_id == config.bos_token_id == generation["eos_token_id"] == separator


def test_an_unknown_in_loop_eval_task_fails_before_training(write_recipe, tmp_path):
    result = smollab("train", str(write_recipe()), "eval.tasks=[hellaswag,no_such_task]", check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: eval.tasks: unknown task 'no_such_task'")
    assert not (tmp_path / "run" / "log.jsonl").exists()
