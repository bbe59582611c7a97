"""The loss-spike guard: what counts as a spike, and a NaN step undone by a rewind that skips its samples."""

import json
import math
import os
import signal
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml

from smollab.data.mixture import MixtureSampler, Schedule
from smollab.data.shards import load_streams
from smollab.recipe import SpikeGuardConfig, load_recipe
from smollab.train.spike import SpikeGuard
from tests.conftest import REPO, python, recipe_tree, smollab

SPIKED_STEP = 5  # stage two's second step; the newest checkpoint before it is step-4 (stage one's end)


def guard(**config) -> SpikeGuard:
    return SpikeGuard(SpikeGuardConfig(**({"window": 5, "sigmas": 3.0, "min_history": 3} | config)))


def test_a_loss_k_sigmas_above_the_rolling_mean_is_a_spike_and_one_below_is_not():
    g = guard()
    history = [3.0, 3.2, 2.9, 3.1, 3.05]
    for step, loss in enumerate(history):
        assert g.judge(0, loss, 1.0) is None
        g.passed(step, loss)
    mean, sigma = statistics.fmean(history), statistics.pstdev(history)
    assert g.judge(0, mean + 2.9 * sigma, 1.0) is None
    assert "σ above the mean" in g.judge(0, mean + 3.1 * sigma, 1.0)
    g.passed(5, 2.0)  # the window rolls: the oldest loss leaves it
    assert g.losses == history[1:] + [2.0]


def test_a_non_finite_loss_or_grad_norm_is_a_spike_even_before_min_history():
    g = guard()
    assert g.judge(0, 100.0, 1.0) is None  # no history: a high loss cannot be judged yet
    assert "not finite" in g.judge(0, math.nan, 1.0)
    assert "not finite" in g.judge(0, 3.0, math.inf)


def test_the_history_restarts_with_each_stage():
    g = guard()
    for step in range(5):
        g.judge(0, 3.0 + 0.01 * step, 1.0)
        g.passed(step, 3.0 + 0.01 * step)
    assert g.judge(0, 4.0, 1.0) is not None
    assert g.judge(1, 4.0, 1.0) is None  # a new mixture moves the loss level: not a spike


def test_rewinds_count_in_a_row_until_the_spiking_step_trains_and_survive_a_resume():
    g = guard(max_rewinds=1)
    g.spiked({"step": 5, "reason": "nan", "skipped": {}})
    assert g.passed(4, 3.0) == [] and g.rewinds == 1  # a replayed step before the spike: still in a row
    resumed = guard(max_rewinds=1)
    resumed.load_state_dict(json.loads(json.dumps(g.state_dict())))  # as checkpoint meta stores it
    assert resumed.state_dict() == g.state_dict() and not resumed.exhausted
    resumed.spiked({"step": 5, "reason": "nan", "skipped": {}})
    assert resumed.exhausted
    assert [e["rewind"] for e in resumed.passed(5, 3.0)] == [1, 2]  # logged once the step trains
    assert resumed.rewinds == 0 and resumed.pending == []


def test_a_skip_gives_its_step_the_next_steps_samples_within_the_stage(write_recipe):
    recipe = load_recipe(write_recipe(stages=[
        {"name": "one", "until_tokens": 20 * 1024, "mixture": {"web": 0.7, "code": 0.3}},
        {"name": "two", "until_tokens": 30 * 1024, "mixture": {"web": 0.4, "code": 0.2, "math": 0.4}}]))
    streams = load_streams(recipe.shards_dir, ["web", "code", "math"])
    static, skipping = MixtureSampler(recipe, streams), MixtureSampler(recipe, streams)
    skipping.use_schedule(Schedule.from_json(json.loads(json.dumps(skipping.schedule.with_skip(7).to_json()))))

    def drawn(s, step):
        return [(x.source, x.epoch, x.window) for x in s.step_samples(step)]

    assert [drawn(skipping, t) for t in range(7)] == [drawn(static, t) for t in range(7)]
    assert [drawn(skipping, t) for t in range(7, 19)] == [drawn(static, t + 1) for t in range(7, 19)]
    # the stage keeps its 20 steps: its last one reads one step further into its own sources
    assert skipping.total_steps == static.total_steps and {x[0] for x in drawn(skipping, 19)} <= {"web", "code"}
    seen = {x for t in range(20) for x in drawn(skipping, t)}
    assert not seen & set(drawn(static, 7))  # the skipped samples are never trained on
    trained = skipping.consumed(20)
    assert trained["stages"] == static.consumed(20)["stages"]  # the stage trains as many tokens as planned
    assert sum(v["tokens"] for v in trained["sources"].values()) == 20 * 1024


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shards):
    """``write(name, **sections)`` recipes over the session's shards, and a clean and a spiked run of the default recipe."""
    root = tmp_path_factory.mktemp("spike")

    def write(name: str, **sections) -> Path:
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe_tree(root / name, *shards, **sections)))
        return path

    smollab("train", str(write("clean")))
    spiked = spikepoint(str(SPIKED_STEP), "train", str(write("spiked")))
    assert spiked.returncode == 0, spiked.stderr[-3000:]
    return root, write, spiked.stderr


def spikepoint(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*python(), "tests/spikepoint.py", *args], cwd=REPO, env=env, capture_output=True, text=True)


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def per_step(run: Path) -> list[tuple[int, float, int]]:
    return [(r["step"], r["loss"], r["data_crc"]) for r in log(run)]


def decisions(run: Path) -> list[dict]:
    path = run / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_nan_step_rewinds_once_to_the_last_checkpoint_skips_its_samples_and_finishes(runs):
    root, _, stderr = runs
    clean, spiked = log(root / "clean"), log(root / "spiked")
    assert [r["step"] for r in spiked] == list(range(8)) and all(math.isfinite(r["loss"]) for r in spiked)
    assert per_step(root / "spiked")[:SPIKED_STEP] == per_step(root / "clean")[:SPIKED_STEP]  # replayed exactly
    # from the spiked step on, each step trains the samples the clean run had one step later, in the same stage
    assert [r["data_crc"] for r in spiked[SPIKED_STEP:-1]] == [r["data_crc"] for r in clean[SPIKED_STEP + 1:]]
    assert [r["stage"] for r in spiked] == [r["stage"] for r in clean]
    assert stderr.count("spike @ step 5") == 1 and "rewound to" in stderr and "step-4" in stderr
    [event] = decisions(root / "spiked")
    assert (event["step"], event["policy"], event["rewound_to"], event["rewind"]) == (SPIKED_STEP, "spike_guard", 4, 1)
    assert "not finite" in event["reason"] and event["tokens"] == SPIKED_STEP * 1024  # trained before it, as every decision line
    assert sum(map(len, event["skipped"].values())) == 16  # the step's 16 windows, by source
    meta = json.loads((root / "spiked" / "checkpoints" / "step-8" / "meta.json").read_text())
    assert [segment["skips"] for segment in meta["schedule"]] == [[], [SPIKED_STEP]]


def test_a_run_killed_after_the_rewind_resumes_with_the_same_skip(runs):
    root, write, _ = runs
    recipe = write("killed")
    result = spikepoint(str(SPIKED_STEP), "--kill-after-rewind", "train", str(recipe))
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    meta = json.loads((root / "killed" / "checkpoints" / "step-4" / "meta.json").read_text())
    assert meta["schedule"][1]["skips"] == [SPIKED_STEP]  # the rewind rewrote the checkpoint it went back to
    smollab("train", str(recipe), "--resume")  # no corrupt data now: only the stored skip changes step 5
    assert per_step(root / "killed") == per_step(root / "spiked")
    assert decisions(root / "killed") == decisions(root / "spiked")


def test_more_rewinds_in_a_row_than_max_rewinds_stop_with_one_line(runs):
    root, write, _ = runs
    recipe = write("stuck", train={"spike_guard": {"max_rewinds": 1}})
    result = spikepoint("5,6", "train", str(recipe))  # after skipping step 5's samples, step 6's are corrupt too
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: train.spike_guard: step 5 spiked 2 times in a row") and "optim.lr" in line
    assert "max_rewinds 1" in line and "windows" in line
    assert [(e["step"], e["rewind"]) for e in decisions(root / "stuck")] == [(5, 1), (5, 2)]


def test_spike_guard_null_lets_a_nan_step_ruin_the_weights(runs):
    root, write, _ = runs
    result = spikepoint(str(SPIKED_STEP), "train", str(write("unguarded", train={"spike_guard": None})))
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [r["loss"] for r in log(root / "unguarded")]
    assert all(math.isfinite(x) for x in losses[:SPIKED_STEP]) and all(math.isnan(x) for x in losses[SPIKED_STEP:])
    assert decisions(root / "unguarded") == [] and "spike @" not in result.stderr


def test_a_spike_before_the_first_checkpoint_stops_with_one_line(runs):
    root, write, _ = runs
    result = spikepoint("1", "train", str(write("early")))  # the first checkpoint comes after step 1
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: train.spike_guard: step 1 spiked") and "nothing to rewind to" in line
    assert "optim.lr" in line and "checkpoint.every_tokens" in line
