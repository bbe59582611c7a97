"""PIQA (validation, 1,838 items), lighteval's harness prompt: "Question: goal\nAnswer:" then " solution"."""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def prompt(row: dict) -> Choices:
    context = f"Question: {row['question']}\nAnswer:"
    return Choices([context] * len(row["choices"]), [f" {c}" for c in row["choices"]], row["gold"])


TASK = MultipleChoiceTask(
    name="piqa", file="piqa.jsonl.gz", rows=1838, hub="ybisk/piqa (validation)",
    fields=("id", "question", "choices", "gold"), prompt=prompt)
