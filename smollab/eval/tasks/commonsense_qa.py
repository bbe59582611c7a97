"""CommonsenseQA (validation, 1,221 items, the original 5 choices), cloze: "Question: q\nAnswer:" then " choice"."""

from smollab.eval.tasks.base import MultipleChoiceTask, question_answer_prompt


TASK = MultipleChoiceTask(
    name="commonsense_qa", file="commonsense_qa.jsonl.gz", rows=1221, hub="tau/commonsense_qa (validation)",
    fields=("id", "question", "choices", "gold"), prompt=question_answer_prompt)
