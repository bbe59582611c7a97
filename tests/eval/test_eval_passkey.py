import json
import re
from dataclasses import replace

import pytest
import typer
from matplotlib.image import imread
from typer.testing import CliRunner

from smollab.errors import SmollabError
from smollab.eval.cli import eval_command
from smollab.eval.evaluate import evaluate, run_in_loop, run_task
from smollab.eval.harness import SmolLM
from smollab.eval.plots import passkey_grid, passkey_heatmap
from smollab.eval.tasks import TASKS, decontamination_items
from smollab.eval.tasks.passkey import FILLER, INSTRUCTION, QUESTION, TASK, needle
from smollab.recipe import EvalConfig

app = typer.Typer()
app.command("eval")(eval_command)
app.command("noop")(lambda: None)  # two commands keep "eval" as a sub-command, as in smollab's app

SHORT = (256, 512, 1024)  # the lengths the tiny llama's 1024 positions allow
NEEDLE_KEY = re.compile(r"The pass key is (\d+)\.")


def token_counter(tokenizer):
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return count


@pytest.mark.parametrize("length, depth", [(256, 0), (512, 25), (1024, 50), (2048, 75), (4096, 100), (8192, 50)])
def test_prompt_fills_the_length_and_puts_the_needle_at_its_depth(tokenizer, length, depth):
    count = token_counter(tokenizer)
    longest_sentence = max(count(" " + s) for s in FILLER)
    row = next(r for r in TASK.docs() if (r["length"], r["depth"], r["trial"]) == (length, depth, 1))
    context, answer = TASK.prompt(row, lambda c, x: count(c + x))
    assert answer == " " + row["key"] and len(row["key"]) == 5 and row["key"].isdigit()
    assert length - longest_sentence < count(context + answer) <= length  # the stated tolerance
    assert context.startswith(INSTRUCTION + "\n") and context.endswith("\n" + QUESTION)
    assert NEEDLE_KEY.findall(context) == [row["key"]]
    # depth = share of the filler tokens that come before the needle, within one filler sentence
    start, end = context.index(needle(row["key"])), context.index("\n" + QUESTION)
    haystack_start = count(INSTRUCTION + "\n")
    before = count(context[:start].rstrip(" ")) - haystack_start
    filler = count(context[:end]) - haystack_start - count(needle(row["key"]))
    assert abs(before - depth / 100 * filler) <= longest_sentence
    if depth == 0:
        assert context.startswith(f"{INSTRUCTION}\n{needle(row['key'])} ")
    if depth == 100:
        assert context.endswith(f" {needle(row['key'])}\n{QUESTION}")


def test_rows_are_deterministic_trial_major_and_lengths_above_max_length_are_skipped():
    rows = TASK.docs()
    assert rows == TASK.docs() and len(rows) == TASK.rows == 6 * 5 * TASK.trials
    assert [r["trial"] for r in rows] == sorted(r["trial"] for r in rows)
    cells = {(length, depth) for length in TASK.lengths for depth in TASK.depths}
    assert [(r["length"], r["depth"]) for r in rows[:30]] == sorted(cells)  # limit 30: every cell once
    assert len({r["key"] for r in rows}) > len(rows) * 0.9
    fitted = TASK.fit(1024)
    assert fitted.lengths == SHORT and fitted.skipped_lengths == (2048, 4096, 8192)
    assert fitted.rows == 3 * 5 * TASK.trials and fitted.docs() == [r for r in rows if r["length"] <= 1024]
    with pytest.raises(SmollabError, match="every length .* is above the model's max_length 200"):
        TASK.fit(200)


def test_passkey_has_no_file_and_contributes_nothing_to_decontamination():
    assert TASKS["passkey"] is TASK
    with pytest.raises(SmollabError, match="generated at run time and has no data file"):
        TASK.path
    assert "passkey" not in {task for task, _, _ in decontamination_items()}


class RetrievalStub(SmolLM):
    """Answers from the needle in the context: right when ``remembers(context, tokens)`` holds, else wrong."""

    def __init__(self, model, tokenizer, remembers):
        super().__init__(model, tokenizer, batch_size=4, max_length=8192)
        self.remembers = remembers

    def loglikelihood(self, requests):
        out = []
        for context, continuation in requests:
            key = NEEDLE_KEY.search(context)[1]
            tokens = sum(map(len, self.encode_pair(context, continuation)))
            right = continuation.strip() == key and self.remembers(context, tokens)
            out.append((0.0 if right else -10.0, right))
        return out


def test_perfect_retrieval_scores_100_through_evaluate_and_the_result_names_skipped_lengths(tiny_model, tokenizer):
    lm = RetrievalStub(tiny_model, tokenizer, lambda context, tokens: True)
    results, samples = evaluate(lm, ["passkey"])
    task = results["tasks"]["passkey"]
    assert task["metrics"]["acc"] == {"value": 1.0, "stderr": 0.0}
    assert {f"acc@{n}@{d}" for n in SHORT for d in TASK.depths} == set(task["metrics"]) - {"acc"}
    assert task["skipped_lengths"] == [2048, 4096, 8192] and task["items"] == task["rows"] == 75
    assert task["data"]["lengths"] == list(SHORT) and task["data"]["trials"] == TASK.trials
    assert len(samples) == 75 and all(s["pred"] is True for s in samples)
    assert {s["gold"] for s in samples} == {r["key"] for r in TASK.fit(1024).docs()}


def test_wrong_and_half_right_stubs_give_the_hand_computed_cells(tiny_model, tokenizer):
    task = replace(TASK, lengths=SHORT, trials=2)
    rows = task.docs()
    wrong = RetrievalStub(tiny_model, tokenizer, lambda context, tokens: False)
    metrics, _ = run_task(wrong, task, rows, allow_unisolated_code=False)
    assert {name: m["value"] for name, m in metrics.items()} == {name: 0.0 for name in metrics}

    # remembers only prompts of at most 512 tokens whose needle is in the first 60% of the text:
    # depths 0, 25, 50 of lengths 256 and 512 (the needle of depth 50 starts near 50%, of 75 near 70%)
    def remembers(context, tokens):
        return tokens <= 512 and NEEDLE_KEY.search(context).start() < 0.6 * len(context)

    metrics, _ = run_task(RetrievalStub(tiny_model, tokenizer, remembers), task, rows, allow_unisolated_code=False)
    expected = {f"acc@{n}@{d}": float(n <= 512 and d <= 50) for n in SHORT for d in TASK.depths}
    assert {name: m["value"] for name, m in metrics.items() if name != "acc"} == expected
    assert metrics["acc"]["value"] == pytest.approx(12 / 30)
    assert metrics["acc"]["stderr"] == pytest.approx((0.4 * 0.6 * 30 / 29 / 30) ** 0.5)


def test_tiny_llama_runs_passkey_end_to_end_with_every_cell(tiny_model, tokenizer):
    lm = SmolLM(tiny_model, tokenizer, batch_size=4, max_length=8192)
    assert lm.max_length == 1024
    results, samples = evaluate(lm, ["passkey"], limit=15)
    task = results["tasks"]["passkey"]
    cells = {f"acc@{n}@{d}" for n in SHORT for d in TASK.depths}
    assert set(task["metrics"]) == {"acc"} | cells and task["items"] == 15
    assert all(0.0 <= m["value"] <= 1.0 and m["stderr"] is not None for m in task["metrics"].values())
    assert all(s["logliks"][0] < 0 for s in samples) and task["skipped_lengths"] == [2048, 4096, 8192]


def test_heatmap_is_a_png_of_the_length_by_depth_grid(tmp_path):
    metrics = {"acc": 0.5, "acc@256@0": 1.0, "acc@256@50": 0.5, "acc@1024@0": 0.0, "acc@1024@50": 0.25}
    lengths, depths, grid = passkey_grid(metrics)
    assert (lengths, depths, grid) == ([256, 1024], [0, 50], [[1.0, 0.0], [0.5, 0.25]])
    path = passkey_heatmap(metrics, tmp_path / "plots" / "passkey.png", "tiny")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    with pytest.raises(SmollabError, match="no acc@{length}@{depth} entry"):
        passkey_heatmap({"acc": 1.0}, tmp_path / "none.png", "none")


def test_eval_cli_writes_the_heatmap_next_to_the_results(tiny_model_dir, tmp_path):
    out = tmp_path / "run" / "results.json"
    result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--tasks", "passkey", "--limit", "15",
                                      "--max-length", "1024", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["tasks"]["passkey"]["skipped_lengths"] == [2048, 4096, 8192]
    assert imread(out.parent / "passkey_heatmap.png").size > 0
    assert "skipped lengths 2048, 4096, 8192" in result.output


def test_run_in_loop_writes_the_stderr_of_each_metric_that_has_one(tiny_model, tokenizer, tmp_path):
    evals = tmp_path / "evals.jsonl"
    line = run_in_loop(tiny_model, tokenizer, EvalConfig(tasks=["lambada", "passkey"], limit=2, batch_size=2),
                       tokens=0, stage="stable", step=1, out_path=evals)
    assert json.loads(evals.read_text()) == line
    assert set(line["metrics"]["passkey"]) == set(line["stderr"]["passkey"]) == {"acc", "acc@256@0", "acc@256@25"}
    assert set(line["stderr"]["lambada"]) == {"acc"} and "perplexity" in line["metrics"]["lambada"]
    assert all(value >= 0 for task in line["stderr"].values() for value in task.values())
