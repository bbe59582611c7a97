"""LAMBADA (OpenAI's detokenised test set, 5,153 items): last-word accuracy and perplexity.

Accuracy counts an item correct when greedy decoding would produce the whole last word (every
token of " word" is the argmax), which is lm-eval's definition; perplexity is exp of the mean
negative log-likelihood of that word.
"""

from smollab.eval.tasks.base import LastWordTask


def prompt(row: dict) -> tuple[str, str]:
    return row["context"], " " + row["continuation"]


TASK = LastWordTask(
    name="lambada", file="lambada_openai.jsonl.gz", rows=5153, hub="EleutherAI/lambada_openai (default, test)",
    fields=("id", "context", "continuation"), prompt=prompt)
