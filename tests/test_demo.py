"""``smollab demo --quick``: every step of the loop, a resume after a kill, a failed step named in one line.

One quick demo (the same code path as the full one, tiny limits) is shared by the module; the resume and
failure tests work on copies of it, so each pays only for the steps it makes run again. The runner's own
rules (restart, the other mode, outputs gone) are checked on toy steps, without training anything.
"""

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from smollab.demo.steps import Demo, run_steps
from smollab.errors import SmollabError
from tests.conftest import smollab
from tests.report.test_report import assert_drawn, assert_offline, images

STEPS = ["curate", "tokenize", "pretrain", "sft", "dpo", "eval", "report"]
SECTIONS = ["overview", "steps", "loss", "lr", "mixture", "evaluation", "curation", "sft", "dpo", "scores"]
TASKS = {"hellaswag", "arc_easy", "piqa", "ifeval", "passkey"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("demo") / "quick"
    return out, smollab("demo", "--quick", "--out", str(out))


def state(out: Path) -> list[dict]:
    return json.loads((out / "demo.json").read_text())


def copy_of(out: Path, target: Path, pending_from: int) -> list[dict]:
    """A copy of a finished demo (mtimes kept) whose steps from ``pending_from`` on are pending again."""
    shutil.copytree(out, target, symlinks=True)
    records = state(target)
    for record in records[pending_from:]:
        record.update(status="pending", seconds=0.0, summary={}, error=None)
    (target / "demo.json").write_text(json.dumps(records))
    return records


def mtimes(out: Path, *dirs: str) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for d in dirs for p in (out / d).rglob("*") if p.is_file()}


def test_the_quick_demo_runs_every_step_chains_their_outputs_and_records_each(quick):
    out, result = quick
    records = state(out)
    assert [r["name"] for r in records] == STEPS
    for record in records:
        assert record["status"] == "done" and record["error"] is None and record["seconds"] > 0
        assert record["summary"]["mode"] == "quick" and record["summary"]["outputs"]
        assert all((out / path).exists() for path in record["summary"]["outputs"])
    curate, tokenize, pretrain = (records[i]["summary"] for i in range(3))
    assert list((out / "curate" / "curated").glob("*.jsonl.gz"))
    assert curate["judge"] == "smollm2-135m-instruct" and curate["annotated"] == 6
    assert curate["docs"]["read"] >= curate["docs"]["dedup"] >= curate["docs"]["score"] > 0

    resolved = yaml.safe_load((out / "pretrain" / "recipe.resolved.yaml").read_text())
    assert resolved["data"]["sources"]["web"]["files"] == [str((out / "curate" / "curated").resolve() / "*.jsonl.gz")]
    assert tokenize["web_documents"] == curate["docs"]["score"]  # the curated set, every document of it

    assert [s["name"] for s in pretrain["stages"]] == ["stable-1", "stable-2", "decay", "long-context"]
    assert pretrain["stages"][-1]["seq_len"] == 1024 and pretrain["rope_theta"] == 100000
    [decision] = pretrain["decisions"]  # the rule is read at stable-2's first step, from stable-1's last checkpoint
    assert decision["rule"] == "code-lags" and decision["step"] == pretrain["stages"][1]["steps"][0]
    config = json.loads((out / pretrain["outputs"][0] / "config.json").read_text())
    assert config["rope_parameters"]["rope_theta"] == 100000

    for name, start in (("sft", "pretrain"), ("dpo", "sft")):
        post = yaml.safe_load((out / name / "recipe.resolved.yaml").read_text())
        assert post["model"]["init_from"] == str(out / start)
    for name, chat_template, model in (("base", False, "pretrain"), ("chat", True, "dpo")):
        results = json.loads((out / "eval" / f"{name}.json").read_text())  # what `smollab eval --out` writes
        assert set(results["tasks"]) == TASKS and all(task["items"] == 3 for task in results["tasks"].values())
        assert results["config"]["chat_template"] is chat_template
        assert Path(results["model"]["source"]).parent.parent == out / model

    for i, name in enumerate(STEPS, 1):
        assert f"step {i}/{len(STEPS)} {name}" in result.stderr and f"{i} {name}" in result.stdout
    report = records[-1]["summary"]  # one page of the whole loop, every part of it found in OUT
    assert report["sections"] == SECTIONS and report["outputs"] == ["report.html", "report.md"]
    html = (out / "report.html").read_text()
    assert_offline(html)
    for section in ("loss", "lr", "mixture", "evaluation", "curation", "sft", "dpo"):  # each with drawn figures
        figures = images(html, section)
        assert figures, section
        for figure in figures:
            assert_drawn(figure)
    assert f"report: {out / 'report.html'}" in " ".join(result.stdout.split())
    for command in ("smollab train recipes/smollm2-135m.yaml",
                    "torchrun --nproc_per_node 8 -m smollab train recipes/smollm2-135m.yaml",
                    "sbatch launch/slurm.sbatch recipes/smollm2-1.7b.yaml"):
        assert command in result.stdout


def test_a_killed_demo_resumes_at_its_first_unfinished_step_and_leaves_finished_ones_untouched(quick, tmp_path):
    out = tmp_path / "demo"
    records = copy_of(quick[0], out, pending_from=4)  # as if killed during dpo: dpo's directory half written
    shutil.rmtree(out / "eval")
    finished = mtimes(out, "curate", "pretrain", "sft")
    dpo_before = mtimes(out, "dpo")
    result = smollab("demo", "--quick", "--out", str(out))
    after = state(out)
    assert [r["status"] for r in after] == ["done"] * len(STEPS)
    assert after[:4] == records[:4]  # read back from demo.json, not redone
    assert mtimes(out, "curate", "pretrain", "sft") == finished
    dpo_after = mtimes(out, "dpo")
    assert all(dpo_after[p] > t for p, t in dpo_before.items() if p in dpo_after)
    assert (out / "eval" / "base.json").exists() and (out / "eval" / "chat.json").exists()
    for i, name in enumerate(STEPS[:4], 1):
        assert f"step {i}/{len(STEPS)} {name}: done" in result.stderr
    assert f"step 5/{len(STEPS)} dpo ·" in result.stderr and f"step 6/{len(STEPS)} eval ·" in result.stderr


def test_a_failed_step_is_named_in_one_line_recorded_and_retried_by_the_next_run(quick, tmp_path):
    out = tmp_path / "demo"
    copy_of(quick[0], out, pending_from=5)
    config = next((out / "pretrain" / "hf").glob("step-*")) / "config.json"
    intact = config.read_text()
    config.write_text("{ not json")
    result = smollab("demo", "--quick", "--out", str(out), check=False)
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: demo step 6/{len(STEPS)} eval failed after ")
    entry = state(out)[5]
    assert entry["status"] == "failed" and entry["error"] and entry["error"] in line
    config.write_text(intact)
    smollab("demo", "--quick", "--out", str(out))
    assert [r["status"] for r in state(out)] == ["done"] * len(STEPS)


def test_the_runner_redoes_from_a_step_whose_outputs_are_gone_refuses_the_other_mode_and_restarts(tmp_path):
    calls = []

    def step(name):
        def run(demo: Demo) -> Path:
            calls.append(name)
            path = demo.fresh(name) / "out.txt"
            path.write_text(name)
            return path  # a step may return its one output path instead of a summary

        return run

    steps = [("a", step("a")), ("b", step("b")), ("c", lambda demo: None)]
    quick = Demo(tmp_path, quick=True, console=Console(file=io.StringIO()))
    run_steps(steps, quick)
    run_steps(steps, quick)
    assert calls == ["a", "b"]
    assert state(tmp_path)[0]["summary"] == {"outputs": ["a/out.txt"], "mode": "quick"}
    (tmp_path / "b" / "out.txt").unlink()
    run_steps(steps, quick)
    assert calls == ["a", "b", "b"]
    full = Demo(tmp_path, quick=False, console=Console(file=io.StringIO()))
    with pytest.raises(SmollabError, match=r"holds a quick demo \(its step a ran with --quick\); run with --quick to "
                                           r"resume it, or add --restart to start over in full mode"):
        run_steps(steps, full)
    (tmp_path / "unrelated.txt").write_text("kept")
    run_steps(steps, full, restart=True)
    assert calls == ["a", "b", "b", "a", "b"] and (tmp_path / "unrelated.txt").exists()
    assert {r["summary"]["mode"] for r in state(tmp_path)} == {"full"}
