"""GSM8K (test, 1,319 problems), 5-shot from the train split, generative, final-number exact match.

Each problem gets its own five worked examples drawn from GSM8K train (the copy already shipped
in ``assets/pretrain``) with a generator seeded by the problem id, so the prompt of an item does
not depend on which other items are evaluated. Generation stops at "Question:" (256 tokens at
most); the answer is the number after "####" if the model wrote one, else its last number.
"""

import random
from functools import cache

from smollab.eval.metrics import extract_final_number, normalize_number
from smollab.eval.tasks.base import GenerativeTask, exact_match_scorer, read_rows
from smollab.paths import ASSETS

SHOTS = 5
TRAIN = ASSETS / "pretrain" / "math_gsm8k_train.jsonl.gz"


@cache
def train_rows() -> list[dict]:
    return read_rows(TRAIN, ("question", "answer"))


def prompt(row: dict) -> str:
    shots = random.Random(f"gsm8k-fewshot/{row['id']}").sample(train_rows(), SHOTS)
    examples = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{examples}Question: {row['question']}\nAnswer:"


score = exact_match_scorer(extract_final_number, lambda row: normalize_number(row["final_answer"]))


TASK = GenerativeTask(
    name="gsm8k", file="gsm8k_test.jsonl.gz", rows=1319, hub="openai/gsm8k (main, test)", shots=SHOTS,
    fields=("id", "question", "answer", "final_answer"), prompt=prompt, score=score,
    gold_text=lambda row: row["answer"], text=lambda row: (row["question"], row["answer"]),
    until=("Question:",), max_new_tokens=256)
