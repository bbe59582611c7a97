"""BoolQ (validation, 3,270 items): "passage\nQuestion: question?\nAnswer:" then " no" / " yes"."""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def prompt(row: dict) -> Choices:
    context = f"{row['passage']}\nQuestion: {row['question'].rstrip('?')}?\nAnswer:"
    return Choices([context] * 2, [" no", " yes"], row["gold"])


TASK = MultipleChoiceTask(
    name="boolq", file="boolq.jsonl.gz", rows=3270, hub="google/boolq (validation)",
    fields=("id", "passage", "question", "gold"), prompt=prompt)
