"""CommonsenseQA (validation, 1,221 items, the original 5 choices), cloze: "Question: q\nAnswer:" then " choice"."""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def prompt(row: dict) -> Choices:
    context = f"Question: {row['question']}\nAnswer:"
    return Choices([context] * len(row["choices"]), [f" {c}" for c in row["choices"]], row["gold"])


TASK = MultipleChoiceTask(
    name="commonsense_qa", file="commonsense_qa.jsonl.gz", rows=1221, hub="tau/commonsense_qa (validation)",
    fields=("id", "question", "choices", "gold"), prompt=prompt)
