"""The task registry: every benchmark by name, the SmolLM2 groups, and decontamination text.

Tasks are plain module-level objects collected here by name; a group is a list of names, so
``--tasks smollm2-base`` expands exactly as SmolLM2's lighteval task files do (minus what is not
vendored: MMLU cloze, Natural Questions, BBH; see docs/evaluation.md); ``instruct`` is the chat-model pair
IFEval + MT-Bench (judged by an LLM server; skipped without one). ``passkey`` is the one generated task
(long-context retrieval); it is in no group.
"""

from collections.abc import Iterator

from smollab.errors import SmollabError
from smollab.eval.tasks import (arc, boolq, commonsense_qa, gsm8k, hellaswag, humaneval, ifeval, lambada, math,
                                mmlu_pro, mt_bench, openbookqa, passkey, piqa, siqa, triviaqa, winogrande)
from smollab.eval.tasks.base import Task

TASKS: dict[str, Task] = {t.name: t for t in (
    hellaswag.TASK, arc.ARC_EASY, arc.ARC_CHALLENGE, piqa.TASK, commonsense_qa.TASK, openbookqa.TASK,
    winogrande.TASK, siqa.TASK, boolq.TASK, mmlu_pro.TASK, gsm8k.TASK, math.TASK, humaneval.TASK,
    triviaqa.TASK, ifeval.TASK, lambada.TASK, passkey.TASK, mt_bench.TASK)}

GROUPS: dict[str, list[str]] = {
    "smollm2-base": ["hellaswag", "arc_easy", "arc_challenge", "piqa", "mmlu_pro", "commonsense_qa", "triviaqa",
                     "winogrande", "openbookqa", "gsm8k"],
    "smollm2-instruct": ["ifeval", "hellaswag", "arc_easy", "arc_challenge", "piqa", "mmlu_pro", "gsm8k"],
    "instruct": ["ifeval", "mt_bench"],
}


def expand(names: list[str]) -> list[Task]:
    """Task objects for a list of task and group names, in order, without duplicates."""
    flat: list[str] = []
    for name in names:
        for n in GROUPS.get(name, [name]):
            if n not in TASKS:
                raise SmollabError(
                    f"unknown task '{n}'; choose from {', '.join(TASKS)} or the groups {', '.join(GROUPS)} "
                    "(or run lm-eval's tasks with --harness lm-eval).")
            if n not in flat:
                flat.append(n)
    return [TASKS[n] for n in flat]


def decontamination_items() -> Iterator[tuple[str, str, str]]:
    """(task, item id, text) for every vendored item: its question/context text and its gold answer.
    Generated tasks (passkey: filler and random digits) have no text a corpus could leak, so give none."""
    for task in TASKS.values():
        if isinstance(task, passkey.PasskeyTask):
            continue
        for row in task.docs():
            question, answer = task.text_of(row)
            yield task.name, row["id"], question
            if answer:
                yield task.name, row["id"], answer
