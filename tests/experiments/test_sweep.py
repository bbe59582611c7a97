"""`smollab ablate`: variants planned and validated before training, resumed after a SIGKILL, launched three ways, RegMix."""

import json
from pathlib import Path

import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from smollab.errors import SmollabError
from smollab.experiments.cli import ablate as ablate_command
from smollab.experiments.sweep import plan_sweep
from smollab.recipe import load_recipe
from smollab.train.loop import train
from tests.conftest import REPO, recipe_tree
from tests.test_train import killed, losses

HELDOUT = {"heldout": {"tokens": 130, "batch_size": 8}}  # two 65-token windows per source
STAGES = [{"name": "one", "until_tokens": 2048, "mixture": {"web": 0.7, "code": 0.3}},
          {"name": "two", "until_tokens": 4096, "mixture": {"web": 0.4, "code": 0.2, "math": 0.4}}]
MIXTURES = {"field": "stages.0.mixture", "values": [{"web": 0.8, "code": 0.2}, {"web": 0.3, "code": 0.7}],
            "names": ["web-heavy", "code-heavy"]}


@pytest.fixture(autouse=True)
def one_thread():
    """Training in this process on one thread, as the CLI subprocesses run (OMP threads crawl on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_sweep(tmp_path: Path, shards, base: dict | None = None, **fields) -> Path:
    """A sweep over a micro base recipe (2 stages of 2 steps, checkpoints at both ends, held-out loss) beside it."""
    base = base or recipe_tree(tmp_path / "unused", *shards, eval=HELDOUT, stages=STAGES)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {"name": "micro", "base": "base.yaml", "out": str(tmp_path / "sweep"), "axes": [MIXTURES]} | fields
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def ablate(*args) -> str:
    """`smollab ablate ARGS` in this process (registration-free), raising its SmollabError; returns its output."""
    app = typer.Typer()
    app.command()(ablate_command)
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def events(out: Path) -> list[tuple[str, str]]:
    return [(e["variant"], e["event"]) for e in map(json.loads, (out / "sweep.jsonl").read_text().splitlines())]


def test_a_sigkilled_sweep_rerun_skips_the_finished_variant_and_resumes_the_killed_one(tmp_path, shards):
    sweep = write_sweep(tmp_path, shards)
    out = tmp_path / "sweep"
    ablate(sweep, "--only", "0")
    finished_log = (out / "web-heavy" / "log.jsonl").read_bytes()
    killed("after", 2, "ablate", str(sweep))  # tests/killpoint.py: SIGKILL once a step-2 checkpoint is published
    assert losses(out / "code-heavy")[-1][0] == 1  # died right after publishing its step-2 checkpoint
    rerun = ablate(sweep)
    assert "resumed from" in rerun and "code-heavy/checkpoints/step-2" in rerun
    assert (out / "web-heavy" / "log.jsonl").read_bytes() == finished_log
    last = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()][-3:]
    assert [(e["variant"], e["event"], e.get("resume")) for e in last] == [
        ("web-heavy", "skipped", None), ("code-heavy", "started", True), ("code-heavy", "finished", True)]
    train(load_recipe(out / "code-heavy" / "recipe.yaml", [f"out={tmp_path / 'straight'}"]))
    assert losses(out / "code-heavy") == losses(tmp_path / "straight")
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert sorted(row["config"] for row in rows) == ["code-heavy", "web-heavy"]
    assert {row["status"] for row in rows} == {"finished"}


def test_slurm_writes_a_job_array_whose_task_i_runs_variant_i_and_only_runs_exactly_one(tmp_path, shards, monkeypatch):
    sweep = write_sweep(tmp_path, shards)
    out = tmp_path / "sweep"
    printed = ablate(sweep, "--launcher", "slurm")
    script = (out / "sweep.sbatch").read_text()
    assert f"sbatch {out / 'sweep.sbatch'}" in printed
    assert "#SBATCH --array=0-1\n" in script and "#SBATCH --job-name=micro\n" in script
    assert f"#SBATCH --output={out}/slurm-%A_%a.out\n" in script
    assert f"-m smollab ablate {sweep} --only $SLURM_ARRAY_TASK_ID --out {out}\n" in script
    assert not (out / "web-heavy" / "log.jsonl").exists()
    ablate(sweep, "--only", "1")  # what array task 1 runs
    assert not (out / "web-heavy" / "log.jsonl").exists() and len(losses(out / "code-heavy")) == 4
    assert events(out) == [("code-heavy", "started"), ("code-heavy", "finished")]
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SmollabError, match="--submit: sbatch is not on PATH"):
        ablate(sweep, "--launcher", "slurm", "--submit", "--parallel", "1")
    assert "#SBATCH --array=0-1%1\n" in (out / "sweep.sbatch").read_text()


@pytest.mark.parametrize("fields, message", [
    ({"axs": []}, r"sweep.yaml: axs: unknown field; check its spelling against the sweep reference \(docs/experiments.md\)"),
    ({"axes": [{"field": "train.sed", "values": [1]}]}, r"variant sed-1: train.sed: unknown field"),
    ({"axes": [{"field": "optim.lr", "values": [1e-3, -1.0]}]}, r"variant lr--1: optim.lr: Input should be greater than 0"),
    ({"axes": [{"field": "stages.0.mixture", "values": [{"web": 0.5, "code": 0.6}], "names": ["bad"]}]},
     r"variant bad: stages.0.mixture: shares sum to 1.1, not 1"),
    ({"axes": [{"field": "stages.5.mixture", "values": [{"web": 1.0}], "names": ["far"]}]},
     r"variant far: override 'stages.5': '5' is not an index of a list of 2; use 0..1"),
    ({"target": "arc_easy.acc"}, r"target arc_easy.acc: task 'arc_easy' is not in eval.tasks \(none\)"),
    ({"axes": [{"field": "optim.lr", "values": [1e-3, 2e-3]}], "zip": True,
      "overrides": ["stages.0.mixtur.web=1"]}, r"stages.0.mixtur: unknown field"),
])
def test_an_invalid_sweep_fails_in_one_line_naming_variant_and_field_before_training(tmp_path, shards, fields, message):
    sweep = write_sweep(tmp_path, shards, **fields)
    with pytest.raises(SmollabError, match=message) as failure:
        ablate(sweep)
    assert "\n" not in str(failure.value)
    assert not (tmp_path / "sweep").exists()


def test_regmix_needs_enough_proxies_and_a_stage_of_the_base(tmp_path, shards):
    sweep = write_sweep(tmp_path, shards, regmix={"stage": 0})
    with pytest.raises(SmollabError, match=r"--regmix 4: a fit over 2 sources needs at least 8 proxies"):
        ablate(sweep, "--regmix", 4)
    sweep = write_sweep(tmp_path, shards, regmix={"stage": 2})
    with pytest.raises(SmollabError, match=r"regmix.stage: 2 is not a stage of the base recipe; use 0..1"):
        ablate(sweep, "--regmix", 8)
    assert not (tmp_path / "sweep").exists()


def test_processes_launcher_reports_a_failing_variant_and_finishes_the_other(tmp_path, shards):
    axis = {"field": "model.max_position_embeddings", "values": [128, 32], "names": ["fits", "too-short"]}
    sweep = write_sweep(tmp_path, shards, axes=[axis])
    out = tmp_path / "sweep"
    with pytest.raises(SmollabError, match=r"1 of 2 variants failed \(too-short\)"):
        ablate(sweep, "--launcher", "processes", "--parallel", "2")
    failed = [e for e in map(json.loads, (out / "sweep.jsonl").read_text().splitlines()) if e["event"] == "failed"]
    assert [e["variant"] for e in failed] == ["too-short"]
    assert "batch.seq_len: 64 exceeds the model's 32 positions" in failed[0]["error"]
    assert "too-short/train.out" in failed[0]["error"]
    assert len(losses(out / "fits")) == 4 and "smollab train" in (out / "fits" / "train.out").read_text()
    rows = {row["config"]: row for row in json.loads((out / "comparison.json").read_text())["rows"]}
    assert rows["fits"]["status"] == "finished" and rows["too-short"]["status"] == "new"


def test_regmix_trains_k_proxies_fits_and_writes_the_predicted_mixture(tmp_path, shards):
    base = recipe_tree(tmp_path / "unused", *shards, eval=HELDOUT, checkpoint={"keep": 1},
                       stages=[{"name": "only", "until_tokens": 1024, "mixture": {"web": 0.6, "code": 0.4}}])
    sweep = write_sweep(tmp_path, shards, base=base, regmix={"stage": 0, "method": "linear", "concentration": 5.0})
    out = tmp_path / "sweep"
    printed = ablate(sweep, "--regmix", 8)
    assert "RegMix mode ignores the axes (stages.0.mixture)" in printed
    plan = json.loads((out / "sweep.json").read_text())
    assert [v["name"] for v in plan["variants"]] == [f"regmix-0{i}" for i in range(8)]
    result = json.loads((out / "regmix.json").read_text())
    assert result["status"] == "fitted" and len(result["proxies"]) == 8
    for proxy, variant in zip(result["proxies"], plan["variants"]):
        evals = [json.loads(line) for line in (out / variant["name"] / "evals.jsonl").read_text().splitlines()]
        assert proxy["target"] == pytest.approx(sum(evals[-1]["heldout"].values()) / 2)
        assert proxy["mixture"] == variant["values"]["stages.0.mixture"]
    assert len({json.dumps(p["mixture"]) for p in result["proxies"]}) == 8
    assert sum(result["prediction"]["mixture"].values()) == pytest.approx(1.0)
    assert set(result["fit"]) == {"method", "proxies", "folds", "cv_r2", "cv_spearman"} and result["fit"]["method"] == "linear"
    assert "mixture: {" in (out / "regmix.md").read_text()
    assert "<h2>RegMix</h2>" in (out / "report.html").read_text()


@pytest.mark.parametrize("example", sorted((REPO / "recipes" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_example_sweeps_plan_and_dry_run_writes_nothing(example, tmp_path):
    plan = plan_sweep(example, out=str(tmp_path / "sweep"))
    assert len(plan.variants) >= 2 and len({v.data_key for v in plan.variants}) == 1
    printed = ablate(example, "--dry-run", "--out", tmp_path / "sweep")
    assert all(v.name in printed for v in plan.variants)
    assert not (tmp_path / "sweep").exists()


def test_a_variant_whose_recipe_changed_since_it_trained_fails_the_plan_naming_the_field(tmp_path, shards):
    sweep = write_sweep(tmp_path, shards, overrides=["optim.lr=0.003"])
    ablate(sweep, "--only", "0")
    changed = write_sweep(tmp_path, shards, overrides=["optim.lr=0.001"])
    with pytest.raises(SmollabError, match=r"variant web-heavy: its run in .* was trained with optim.lr = 0.003, now 0.001; "
                                           r"delete .* to retrain it"):
        ablate(changed, "--dry-run")
