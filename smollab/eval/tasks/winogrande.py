"""WinoGrande (dev, 1,267 items) with partial scoring.

Each option fills the blank inside the context; only the shared continuation after the blank is
scored, so the two choices differ in their contexts, not in what is scored (hence acc equals
acc_norm here).
"""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def prompt(row: dict) -> Choices:
    options = row["context_options"]
    return Choices(list(options), [" " + row["continuation"]] * len(options), row["gold"])


TASK = MultipleChoiceTask(
    name="winogrande", file="winogrande.jsonl.gz", rows=1267, hub="allenai/winogrande (winogrande_xl, validation)",
    fields=("id", "context_options", "continuation", "gold"), prompt=prompt)
