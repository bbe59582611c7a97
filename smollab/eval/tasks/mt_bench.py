"""MT-Bench (80 two-turn questions, 8 categories): the model answers both turns, an LLM judge rates each answer 1–10.

The model answers greedily with its chat template, turn 2 after its own turn-1 answer; each turn is then
graded with FastChat's single-answer templates (``single-v1``, ``single-v1-multi-turn`` for turn 2; their
``-math-`` variants with GPT-4's reference answers for math, reasoning and coding, as FastChat does) by an
OpenAI-compatible judge (``smollab.llm``), whose judgements are cached so a rerun pays nothing. Without a
judge the task is skipped before any answer is generated: answers nobody grades are not worth the compute.
Deviations from FastChat: greedy answers in every category (FastChat samples writing and roleplay at 0.7,
stem and humanities at 0.1), and a rating outside 1–10 counts as unparseable, like a missing one.
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from smollab.eval.tasks.base import EVAL_ASSETS, Task, read_rows
from smollab.llm import HttpClient, LLMConfig, RequestCache, ask
from smollab.recipe import JudgeConfig

NEEDS_REFERENCE = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_FALLBACK = re.compile(r"\[(\d+\.?\d*)\]")
JUDGE_URL_ENV = "SMOLLAB_JUDGE_URL"
JUDGEMENTS = "mt_bench_judgements.jsonl"
NO_JUDGE = ("mt_bench skipped: no judge endpoint is configured; pass --judge-url URL (in a recipe: "
            f"eval.judge.base_url, or export {JUDGE_URL_ENV}) to have an OpenAI-compatible server grade it.")


def configured_judge(judge: JudgeConfig | None) -> JudgeConfig | None:
    """``judge`` when one is configured (``--judge-url``, ``eval.judge``), else one at ``$SMOLLAB_JUDGE_URL`` with the
    default settings, else None (mt_bench is skipped)."""
    url = os.environ.get(JUDGE_URL_ENV)
    return judge or (JudgeConfig(base_url=url) if url else None)


def conversation(row: dict, answers: Sequence[str]) -> list[dict[str, str]]:
    """The chat before the model's next turn: each earlier question with its answer, then the next question."""
    messages = []
    for question, answer in zip(row["turns"], answers):
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": row["turns"][len(answers)]}]


def template_name(row: dict, turn: int) -> str:
    math = "-math" if row["category"] in NEEDS_REFERENCE and row.get("gpt4_reference_turns") else ""
    return f"single{math}-v1" + ("-multi-turn" if turn == 2 else "")


def parse_rating(judgement: str) -> float | None:
    """The judge's ``[[rating]]`` (FastChat's pattern, then its ``[rating]`` fallback); None if absent or not 1–10."""
    match = RATING.search(judgement) or RATING_FALLBACK.search(judgement)
    rating = float(match.group(1)) if match else None
    return rating if rating is not None and 1 <= rating <= 10 else None


@dataclass(frozen=True, kw_only=True)
class MTBenchTask(Task):
    judge_prompts: str = "mt_bench_judge_prompts.jsonl.gz"
    max_new_tokens: int = 1024  # per turn, FastChat's max_new_token
    percent: bool = False

    @property
    def judge_prompts_path(self) -> Path:
        return EVAL_ASSETS / self.judge_prompts

    def templates(self) -> dict[str, dict]:
        rows = read_rows(self.judge_prompts_path, ("name", "system_prompt", "prompt_template"))
        return {t["name"]: t for t in rows}

    def text_of(self, row: dict) -> tuple[str, str]:
        references = [*(row.get("reference") or []), *(row.get("gpt4_reference_turns") or [])]
        return "\n".join(row["turns"]), "\n".join(r for r in references if r)

    def judge_request(self, row: dict, answers: Sequence[str], turn: int, templates: dict, judge: JudgeConfig) -> dict:
        """The chat asking the judge to rate turn ``turn`` (1 or 2) of ``answers``: FastChat's system + user message."""
        template = templates[template_name(row, turn)]
        fields = {"question": row["turns"][0], "answer": answers[0], "question_1": row["turns"][0],
                  "question_2": row["turns"][1], "answer_1": answers[0], "answer_2": answers[1]}
        fields |= {f"ref_answer_{i}": ref for i, ref in enumerate(row.get("gpt4_reference_turns") or [], 1)}
        messages = [{"role": "system", "content": template["system_prompt"]},
                    {"role": "user", "content": template["prompt_template"].format(**fields)}]
        # the sampling settings travel in the request so that they are part of its cache key
        return {"messages": messages, "max_tokens": judge.max_tokens, "temperature": judge.temperature}

    def grade(self, rows: Sequence[dict], answers: Sequence[Sequence[str]], judge: JudgeConfig,
              cache: RequestCache) -> list[dict]:
        """Per question: both turns' ``ratings`` (None where unparseable), the raw ``judgements`` and ``templates``."""
        templates = self.templates()
        requests = [self.judge_request(row, pair, turn, templates, judge)
                    for row, pair in zip(rows, answers) for turn in (1, 2)]
        replies = ask(requests, LLMConfig(backend="http", http=judge), cache, client=HttpClient(judge, "eval.judge"))
        texts = [reply["answer"] for reply in replies]
        return [{"ratings": [parse_rating(t) for t in texts[2 * i:2 * i + 2]], "judgements": texts[2 * i:2 * i + 2],
                 "templates": [template_name(row, turn) for turn in (1, 2)]} for i, row in enumerate(rows)]

    def scores(self, rows: Sequence[dict], graded: Sequence[dict]) -> dict[str, list[float] | int]:
        """``score`` (every rated turn), ``score_turn1``, ``score_turn2``, ``score_<category>`` and the count of
        ``unparseable`` judgements, which are left out of the means."""
        scores: dict[str, list[float] | int] = {"score": [], "score_turn1": [], "score_turn2": []}
        unparseable = 0
        for row, result in zip(rows, graded):
            for turn, rating in enumerate(result["ratings"], 1):
                if rating is None:
                    unparseable += 1
                    continue
                for name in ("score", f"score_turn{turn}", f"score_{row['category']}"):
                    scores.setdefault(name, []).append(rating)
        return scores | {"unparseable": unparseable}


TASK = MTBenchTask(
    name="mt_bench", file="mt_bench.jsonl.gz", rows=80, hub="HuggingFaceH4/mt_bench_prompts",
    fields=("id", "question_id", "category", "turns"))
