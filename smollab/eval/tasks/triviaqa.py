"""TriviaQA (llm-foundry's 3,000-question subsample, no context), generative, normalised exact match.

Prompt "Question: q\nAnswer:", at most 20 new tokens, cut at a new line or "Question:"; the
answer counts when its normalised form equals any normalised alias. The vendored answers are
clipped to at most 10 tokens upstream, so scores are close to, not equal to, the full set's.
"""

from collections.abc import Sequence

from smollab.eval.metrics import exact_match_any
from smollab.eval.tasks.base import GenerativeTask, Scored


def extract(generation: str) -> str:
    return generation.strip().split("\n")[0].strip()


def score(rows: Sequence[dict], generations: Sequence[str]) -> list[Scored]:
    out = []
    for row, text in zip(rows, generations):
        answer = extract(text)
        golds = [row["answer"], *row.get("aliases", [])]
        out.append(Scored({"exact_match": exact_match_any(answer, golds)}, answer, row["answer"]))
    return out


TASK = GenerativeTask(
    name="triviaqa", file="triviaqa_sm_sub.jsonl.gz", rows=3000, hub="mandarjoshi/trivia_qa (rc.nocontext, validation)",
    fields=("id", "question", "answer"), prompt=lambda row: f"Question: {row['question']}\nAnswer:",
    score=score, gold_text=lambda row: row["answer"], until=("\n", "Question:"), max_new_tokens=20)
