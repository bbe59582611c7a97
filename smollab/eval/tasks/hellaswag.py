"""HellaSwag (validation, 10,042 items), cloze form with lighteval's HellaSwag preprocessing.

The prompt is "activity_label: ctx" and each ending is scored as " ending". The vendored text
comes from a dump that joined ``ctx_a`` and ``ctx_b``; lighteval capitalises ``ctx_b``, so we
capitalise the first letter of the last sentence fragment when it starts lower case (what
``capitalize`` does there) but cannot lower-case the rest of ``ctx_b`` as ``capitalize`` would.
"""

import re

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def preprocess(text: str) -> str:
    """lighteval/lm-eval HellaSwag cleaning: '[title]' becomes a sentence end, other [tags] go."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def capitalise_last_fragment(ctx: str) -> str:
    head, sep, tail = ctx.rpartition(". ")
    return head + sep + tail[:1].upper() + tail[1:]


def prompt(row: dict) -> Choices:
    context = preprocess(f"{row['activity_label']}: {capitalise_last_fragment(row['ctx'])}")
    return Choices([context] * len(row["endings"]), [" " + preprocess(e) for e in row["endings"]], int(row["label"]))


TASK = MultipleChoiceTask(
    name="hellaswag", file="hellaswag.jsonl.gz", rows=10042, hub="Rowan/hellaswag (validation)",
    fields=("id", "activity_label", "ctx", "endings", "label"), prompt=prompt)
