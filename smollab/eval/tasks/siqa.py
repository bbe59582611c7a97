"""Social IQa (validation, 1,954 items), cloze: "Question: context question\nAnswer:" then " answer".

Only llm-foundry's two-answer version is vendored (one distractor removed), so chance is 50%, not
33%, and scores are not comparable with the standard three-answer setup.
"""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask


def prompt(row: dict) -> Choices:
    context = f"Question: {row['context']} {row['question']}\nAnswer:"
    return Choices([context] * len(row["choices"]), [f" {c}" for c in row["choices"]], row["gold"])


TASK = MultipleChoiceTask(
    name="siqa", file="siqa_2way.jsonl.gz", rows=1954, hub="allenai/social_i_qa (validation; 3 answers)",
    fields=("id", "context", "question", "choices", "gold"), prompt=prompt)
