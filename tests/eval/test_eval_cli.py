import json
import shutil

import pytest
import torch
import typer
from typer.testing import CliRunner

from smollab.devices import resolve_device
from smollab.errors import SmollabError
from smollab.eval.cli import eval_command
from smollab.eval.evaluate import select_rows
from smollab.eval.tasks import TASKS

app = typer.Typer()
app.command("eval")(eval_command)
app.command("noop")(lambda: None)  # two commands keep "eval" as a sub-command, as in smollab's app


def test_eval_writes_results_and_one_sample_line_per_item(tiny_model_dir, tmp_path):
    out, samples = tmp_path / "results.json", tmp_path / "samples.jsonl"
    result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--tasks", "arc_easy,winogrande,lambada,triviaqa",
                                      "--limit", "3", "--batch-size", "2", "--out", str(out),
                                      "--log-samples", str(samples)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert results["model"]["fingerprint"] and results["model"]["parameters"] > 0
    arc = results["tasks"]["arc_easy"]
    assert arc["items"] == 3 and arc["rows"] == 2376 and len(arc["data"]["sha256"]) == 64
    assert set(arc["metrics"]) == {"acc", "acc_norm"} and arc["metrics"]["acc"]["stderr"] is not None
    assert "perplexity" in results["tasks"]["lambada"]["metrics"]
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(lines) == 12
    first = lines[0]
    assert first["task"] == "arc_easy" and first["id"] == "arc_easy/test/00000"
    assert len(first["logliks"]) == 4 and all(ll < 0 for ll in first["logliks"]) and "pred" in first and "gold" in first
    trivia = [s for s in lines if s["task"] == "triviaqa"]
    assert all("generation" in s and "pred" in s and s["gold"] for s in trivia)
    assert "arc_easy" in result.output


def test_limit_takes_file_order_and_sample_is_a_seeded_subset():
    task = TASKS["piqa"]
    assert [r["id"] for r in select_rows(task, limit=3)] == [r["id"] for r in task.docs()[:3]]
    a = select_rows(task, sample=5, seed=1)
    assert a == select_rows(task, sample=5, seed=1) and a != select_rows(task, sample=5, seed=2)
    assert a != task.docs()[:5]


def test_limit_and_sample_together_are_refused(tiny_model_dir):
    with pytest.raises(SmollabError, match="--limit and --sample"):
        eval_command(str(tiny_model_dir), tasks="piqa", limit=2, sample=2)


@pytest.mark.parametrize("options, option", [
    (["--limit", "0"], "--limit"), (["--limit", "-1"], "--limit"), (["--sample", "0"], "--sample"),
    (["--batch-size", "0"], "--batch-size"), (["--tasks", ""], "--tasks"), (["--tasks", " , "], "--tasks")])
def test_counts_below_one_and_no_tasks_are_refused_before_the_model_loads(options, option, tmp_path):
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "no-such-model"), *options])
    assert isinstance(result.exception, SmollabError), result.output
    message = str(result.exception)
    assert message.startswith(option) and "\n" not in message


def test_an_unknown_task_is_reported_before_the_model_loads(tmp_path):
    with pytest.raises(SmollabError, match="unknown task 'hellaswagg'"):
        eval_command(str(tmp_path / "no-such-model"), tasks="piqa,hellaswagg")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(SmollabError, match=r"^--device cuda: .*use --device cpu or auto\.$"):
        eval_command(str(tmp_path / "no-such-model"), tasks="piqa", device="cuda")
    with pytest.raises(SmollabError, match=r"^train\.device cuda:1: .*use train\.device cpu or auto\.$"):
        resolve_device("cuda:1", "train.device")
    with pytest.raises(SmollabError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("gpu", "--device")
    assert resolve_device("auto", "--device") == torch.device("cpu")


def test_results_name_the_device_and_the_checkpoint_a_run_directory_resolved_to(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    for step in (2, 10):
        shutil.copytree(tiny_model_dir, run / "hf" / f"step-{step}")
    out = tmp_path / "results.json"
    result = CliRunner().invoke(app, ["eval", str(run), "--tasks", "piqa", "--limit", "2", "--device", "cpu",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = json.loads(out.read_text())["model"]
    assert model["source"] == str(run / "hf" / "step-10") and model["step"] == 10 and model["device"] == "cpu"
    assert f"{run} -> {run / 'hf' / 'step-10'} (step 10) on cpu" in result.output  # the line above the table


def test_any_lm_eval_task_runs_through_the_same_adapter_offline(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = tmp_path / "toy.json"
    data.write_text("\n".join(json.dumps({"q": f"Is {i} even?", "choices": ["yes", "no"], "label": i % 2})
                              for i in range(4)) + "\n")
    (tmp_path / "toy.yaml").write_text(
        "task: smollab_toy\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: \"Question: {{q}}\\nAnswer:\"\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: label\n"
        "metric_list:\n  - metric: acc\n")
    out, samples = tmp_path / "lm_eval.json", tmp_path / "lm_eval_samples.jsonl"
    result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--harness", "lm-eval", "--tasks", "smollab_toy",
                                      "--include-path", str(tmp_path), "--out", str(out),
                                      "--log-samples", str(samples)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert 0.0 <= results["results"]["smollab_toy"]["acc,none"] <= 1.0
    assert len(samples.read_text().splitlines()) == 4
