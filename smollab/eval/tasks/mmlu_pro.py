"""MMLU-Pro (test, 12,032 items) in SmolLM2's multiple-choice format (MCF).

The prompt lists the lettered options and ends with "Answer:"; the choices scored are the letters
" A", " B", ..., so the model must know the answer's letter, not just find the text likely. The
gold is ``answer_index`` (one source row, 3983, disagrees with its own ``answer`` letter; kept).
"""

from smollab.eval.tasks.base import Choices, MultipleChoiceTask

LETTERS = "ABCDEFGHIJKLMNOP"


def prompt(row: dict) -> Choices:
    options = "".join(f"{LETTERS[i]}. {o}\n" for i, o in enumerate(row["options"]))
    context = (f"The following are multiple choice questions (with answers) about {row['category']}.\n\n"
               f"{row['question'].strip()}\n{options}Answer:")
    letters = [f" {LETTERS[i]}" for i in range(len(row["options"]))]
    return Choices([context] * len(letters), letters, row["answer_index"])


def text(row: dict) -> tuple[str, str]:
    return row["question"], row["options"][row["answer_index"]]


TASK = MultipleChoiceTask(
    name="mmlu_pro", file="mmlu_pro.jsonl.gz", rows=12032, hub="TIGER-Lab/MMLU-Pro (test)",
    fields=("id", "question", "options", "answer_index", "category"), prompt=prompt, text=text)
