"""PIQA (validation, 1,838 items), lighteval's harness prompt: "Question: goal\nAnswer:" then " solution"."""

from smollab.eval.tasks.base import MultipleChoiceTask, question_answer_prompt


TASK = MultipleChoiceTask(
    name="piqa", file="piqa.jsonl.gz", rows=1838, hub="ybisk/piqa (validation)",
    fields=("id", "question", "choices", "gold"), prompt=question_answer_prompt)
