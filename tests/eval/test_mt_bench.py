"""MT-Bench: two greedy turns in the chat template, graded by a stub OpenAI-compatible judge on 127.0.0.1."""

import json
from dataclasses import replace

import pytest
import typer
from typer.testing import CliRunner

from smollab.errors import SmollabError
from smollab.eval.cli import _judge, eval_command
from smollab.eval.evaluate import check_in_loop_tasks, run_in_loop, run_task
from smollab.eval.harness import SmolLM
from smollab.eval.tasks import TASKS, expand
from smollab.eval.tasks.mt_bench import JUDGE_URL_ENV, JUDGEMENTS, NO_JUDGE, TASK, configured_judge, parse_rating
from smollab.recipe import EvalConfig, JudgeConfig

from tests.eval.conftest import tiny_llama
from tests.openai_stub import ScriptedServer

app = typer.Typer()
app.command("eval")(eval_command)
app.command("noop")(lambda: None)  # two commands keep "eval" as a sub-command, as in smollab's app

QUESTIONS = {81: "writing", 111: "math", 101: "reasoning"}
# (question_id, turn) -> the stub judge's reply; anything else gets "Rating: [[5]]"
SCRIPT = {(81, 1): "Engaging. Rating: [[7]]", (81, 2): "Misses the letter A. [[4]]",
          (111, 1): "The area is 3, not what was said. Rating: [[2]]", (111, 2): "Rating: [3.5]",
          (101, 1): "Correct: second place. [[9]]", (101, 2): "I would rather not put a number on this."}


class StubJudge(ScriptedServer):
    """A judge answering from SCRIPT by the question and turn it is shown; ``bodies`` holds every request body."""

    def __init__(self):
        first_turns = {row["turns"][0]: row["question_id"] for row in TASK.docs()}

        def respond(path, body):
            prompt = body["messages"][1]["content"]
            turn = 2 if "### User:" in prompt else 1
            qid = next((q for text, q in first_turns.items() if text in prompt), None)
            return SCRIPT.get((qid, turn), "Rating: [[5]]"), "stop"

        super().__init__(respond)

    @property
    def requests(self) -> list[dict]:
        return [body for _, body in self.bodies]


@pytest.fixture(autouse=True)
def no_ambient_judge(monkeypatch, tmp_path):
    monkeypatch.delenv(JUDGE_URL_ENV, raising=False)
    monkeypatch.setenv("SMOLLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def stub():
    judge = StubJudge()
    yield judge
    judge.shutdown()


@pytest.fixture
def short_tasks(monkeypatch):
    """ifeval and mt_bench with a few new tokens, so a tiny model answers in milliseconds."""
    for name in ("ifeval", "mt_bench"):
        monkeypatch.setitem(TASKS, name, replace(TASKS[name], max_new_tokens=6))


@pytest.fixture(scope="module")
def judged(stub, tokenizer, tmp_path_factory):
    """The three scripted questions answered by a tiny Llama and graded once; the contexts it was asked to continue.

    A random tiny Llama only repeats the newline after ``assistant\n``, which strips to nothing, so each of its
    answers is tagged ``reply N`` to be findable in the history and the judge's prompt."""
    lm = SmolLM(tiny_llama(tokenizer), tokenizer, batch_size=3)
    contexts = []
    generate = lm.generate_until

    def tagged(requests):
        texts = generate(requests)
        contexts.extend(r.context for r in requests)
        return [f"{text}reply {len(contexts) - len(texts) + i}" for i, text in enumerate(texts)]

    lm.generate_until = tagged
    rows = [row for row in TASK.docs() if row["question_id"] in QUESTIONS]
    out_dir = tmp_path_factory.mktemp("mt_bench")
    before = len(stub.bodies)
    metrics, samples = run_task(lm, replace(TASK, max_new_tokens=6), rows, allow_unisolated_code=False,
                                judge=JudgeConfig(base_url=stub.url), out_dir=out_dir)
    return {"metrics": {m: v["value"] for m, v in metrics.items()}, "samples": {s["id"]: s for s in samples},
            "bodies": stub.requests[before:], "contexts": contexts, "out_dir": out_dir}


def test_bundled_mt_bench_has_80_two_turn_questions_and_fastchats_judge_templates():
    rows = TASK.docs()
    assert len(rows) == TASK.rows == 80 and all(len(row["turns"]) == 2 for row in rows)
    assert sorted({row["category"] for row in rows}) == ["coding", "extraction", "humanities", "math", "reasoning",
                                                           "roleplay", "stem", "writing"]
    assert {"single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"} <= set(TASK.templates())
    licences = (TASK.path.parent / "LICENSES.md").read_text()
    assert "mt_bench.jsonl.gz" in licences and "mt_bench_judge_prompts.jsonl.gz" in licences


def test_score_is_the_mean_of_the_judge_ratings(judged):
    m = judged["metrics"]  # parsed ratings: writing 7, 4; math 2, 3.5; reasoning 9 and one unparseable
    assert m["score"] == pytest.approx((7 + 4 + 2 + 3.5 + 9) / 5)
    assert m["score_turn1"] == pytest.approx((7 + 2 + 9) / 3) and m["score_turn2"] == pytest.approx((4 + 3.5) / 2)
    assert (m["score_writing"], m["score_math"], m["score_reasoning"]) == pytest.approx((5.5, 2.75, 9.0))
    assert next(iter(m)) == "score"  # the headline a table shows


def test_unparseable_judgement_is_counted_not_fatal(judged):
    assert judged["metrics"]["unparseable"] == 1
    assert judged["samples"]["mt_bench/101"]["pred"] == [9.0, None]


def test_turn_two_sees_turn_one_in_the_history_for_the_model_and_the_judge(judged):
    sample, row = judged["samples"]["mt_bench/81"], next(r for r in TASK.docs() if r["question_id"] == 81)
    first_answer = sample["generation"][0]
    assert first_answer.startswith("reply ")
    second_context = next(c for c in judged["contexts"] if row["turns"][1] in c)
    positions = [second_context.index(text) for text in (row["turns"][0], first_answer, row["turns"][1])]
    assert positions == sorted(positions)
    turn_two = next(b["messages"][1]["content"] for b in judged["bodies"]
                    if row["turns"][0] in b["messages"][1]["content"] and "### User:" in b["messages"][1]["content"])
    assert first_answer in turn_two and row["turns"][1] in turn_two and sample["generation"][1] in turn_two


def test_math_questions_are_judged_against_the_reference_answer(judged):
    assert judged["samples"]["mt_bench/111"]["templates"] == ["single-math-v1", "single-math-v1-multi-turn"]
    assert judged["samples"]["mt_bench/81"]["templates"] == ["single-v1", "single-v1-multi-turn"]
    reference = next(r for r in TASK.docs() if r["question_id"] == 111)["gpt4_reference_turns"]
    math = sorted((b["messages"][1]["content"] for b in judged["bodies"]
                   if "vertices of a triangle" in b["messages"][1]["content"]), key=lambda text: "### User:" in text)
    assert len(math) == 2 and reference[0] in math[0] and reference[1] not in math[0] and reference[1] in math[1]
    writing = [b["messages"][1]["content"] for b in judged["bodies"] if "Hawaii" in b["messages"][1]["content"]]
    assert writing and not any("Reference Answer" in text for text in writing)
    assert all((b["model"], b["temperature"], b["max_tokens"]) == ("gpt-4", 0.0, 2048) for b in judged["bodies"])


def test_rating_follows_fastchats_patterns():
    assert parse_rating("Rating: [[8]]") == 8.0 and parse_rating("[[6.5]]") == 6.5
    assert parse_rating("Point [2] aside, Rating: [[6]]") == 6.0  # [[n]] wins over an earlier [n]
    assert parse_rating("Rating: [7]") == 7.0  # FastChat's fallback
    assert parse_rating("no score") is None and parse_rating("[[0]]") is None and parse_rating("[[11]]") is None


def test_mt_bench_gives_its_questions_and_references_to_decontamination():
    question, answer = TASK.text_of(next(r for r in TASK.docs() if r["question_id"] == 111))
    assert "vertices of a triangle" in question and "circle circumscribing" in question
    assert "Area is 3" in answer and "To find the area of the triangle" in answer


def test_without_a_judge_instruct_skips_mt_bench_in_one_line_and_still_scores_ifeval(
        tiny_model_dir, tmp_path, short_tasks, monkeypatch):
    contexts = []
    generate = SmolLM.generate_until
    monkeypatch.setattr(SmolLM, "generate_until",
                        lambda self, requests: contexts.extend(r.context for r in requests) or generate(self, requests))
    out = tmp_path / "results.json"
    result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--tasks", "instruct", "--limit", "2",
                                      "--chat-template", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if "mt_bench" in line] == [NO_JUDGE]
    results = json.loads(out.read_text())
    assert set(results["tasks"]) == {"ifeval"} and results["tasks"]["ifeval"]["items"] == 2
    assert results["skipped"] == {"mt_bench": "no judge endpoint configured"} and results["config"]["judge"] is None
    first = TASK.docs()[0]["turns"][0]
    assert len(contexts) == 2 and not any(first in c for c in contexts)  # skipped before generating anything
    assert not (tmp_path / JUDGEMENTS).exists()


def test_judge_url_grades_mt_bench_and_a_rerun_reads_the_cache(tiny_model_dir, tmp_path, stub, short_tasks):
    out = tmp_path / "results.json"
    command = ["eval", str(tiny_model_dir), "--tasks", "mt_bench", "--limit", "1", "--judge-url", stub.url,
               "--out", str(out)]
    before = len(stub.bodies)
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert len(stub.bodies) == before + 2 and (tmp_path / JUDGEMENTS).exists()
    results = json.loads(out.read_text())
    metrics = results["tasks"]["mt_bench"]["metrics"]
    assert metrics["score"]["value"] == pytest.approx(5.5) and metrics["unparseable"]["value"] == 0
    assert results["config"]["judge"] == {"base_url": stub.url, "model": "gpt-4"}
    assert "5.50" in first.output  # a 1-10 rating, not a percentage
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert len(stub.bodies) == before + 2  # every judgement came from the cache
    assert json.loads(out.read_text())["tasks"]["mt_bench"]["metrics"] == metrics


def test_in_loop_evaluation_grades_with_eval_judge_and_caches_in_the_run_dir(tokenizer, tmp_path, stub, short_tasks):
    evals = tmp_path / "run" / "evals.jsonl"
    config = EvalConfig(tasks=["mt_bench"], limit=1, batch_size=2, judge={"base_url": stub.url})
    line = run_in_loop(tiny_llama(tokenizer), tokenizer, config, tokens=0, stage="s", step=1, out_path=evals)
    assert line["metrics"]["mt_bench"]["score"] == pytest.approx(5.5) and (evals.parent / JUDGEMENTS).exists()


def test_judge_comes_from_the_option_or_recipe_before_smollab_judge_url(monkeypatch):
    assert configured_judge(None) is None and _judge(None, None, None) is None
    recipe = EvalConfig(judge={"base_url": "http://judge:8000/v1"}).judge
    assert (recipe.model, recipe.max_tokens, recipe.temperature) == ("gpt-4", 2048, 0.0)
    monkeypatch.setenv(JUDGE_URL_ENV, "http://fallback/v1")
    assert configured_judge(recipe) is recipe and configured_judge(None).base_url == "http://fallback/v1"
    assert _judge("http://option/v1", "qwen", None).model_dump(include={"base_url", "model"}) == {
        "base_url": "http://option/v1", "model": "qwen"}
    assert _judge(None, "qwen", None).base_url == "http://fallback/v1"
    monkeypatch.delenv(JUDGE_URL_ENV)
    with pytest.raises(SmollabError, match="--judge-url"):
        _judge(None, "qwen", None)
    with pytest.raises(SmollabError, match=r"--judge-key-env NO_SUCH_KEY: \$NO_SUCH_KEY is not set"):
        _judge("http://option/v1", None, "NO_SUCH_KEY")


def test_a_training_run_with_an_unset_judge_key_fails_before_training():
    check_in_loop_tasks(EvalConfig(tasks=["instruct"]))  # no judge: mt_bench will be skipped, nothing to check
    config = EvalConfig(tasks=["instruct"], judge={"base_url": "http://judge/v1", "api_key_env": "NO_SUCH_KEY"})
    with pytest.raises(SmollabError, match=r"eval.judge.api_key_env: \$NO_SUCH_KEY is not set"):
        check_in_loop_tasks(config)


def test_instruct_group_is_ifeval_then_mt_bench():
    assert [t.name for t in expand(["instruct"])] == ["ifeval", "mt_bench"]
