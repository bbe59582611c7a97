"""ARC-Easy and ARC-Challenge (test), cloze form: "Question: q\nAnswer:" then " choice".

SmolLM2 reports the mean of the two as "ARC (Average)"; the ``smollm2-*`` groups run both and
the results table shows that mean. Vendored rows are llm-foundry's, which all have 4 choices
(the official test set has a few 3- and 5-choice questions).
"""

from smollab.eval.tasks.base import MultipleChoiceTask, question_answer_prompt


ARC_EASY = MultipleChoiceTask(
    name="arc_easy", file="arc_easy.jsonl.gz", rows=2376, hub="allenai/ai2_arc (ARC-Easy, test)",
    fields=("id", "question", "choices", "gold"), prompt=question_answer_prompt)
ARC_CHALLENGE = MultipleChoiceTask(
    name="arc_challenge", file="arc_challenge.jsonl.gz", rows=1172, hub="allenai/ai2_arc (ARC-Challenge, test)",
    fields=("id", "question", "choices", "gold"), prompt=question_answer_prompt)
