"""OpenBookQA (test, 500 items), cloze on the question stem alone (no fact), then " choice"."""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def prompt(row: dict) -> Choices:
    return Choices([row["question"]] * len(row["choices"]), [f" {c}" for c in row["choices"]], row["gold"])


TASK = MultipleChoiceTask(
    name="openbookqa", file="openbookqa.jsonl.gz", rows=500, hub="allenai/openbookqa (main, test)",
    fields=("id", "question", "choices", "gold"), prompt=prompt)
