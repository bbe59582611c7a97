"""HumanEval (164 problems): greedy completion of each function, pass@1 in the sandbox.

The prompt is the function signature and docstring; generation stops at the Codex stop
sequences (a new top-level block) and the completion is run with the problem's tests in
``smollab.eval.sandbox``, which refuses to run it where it cannot isolate it from the network
unless ``allow_unisolated_code`` is set. Greedy decoding gives one sample per problem, so pass@1
is the pass rate.
"""

from collections.abc import Sequence

from smollab.eval.sandbox import run_programs
from smollab.eval.tasks.base import CodeTask, Scored

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def program(row: dict, completion: str) -> str:
    return f"{row['prompt']}{completion}\n\n{row['test']}\n\ncheck({row['entry_point']})\n"


def score(rows: Sequence[dict], completions: Sequence[str], *, allow_unisolated_code: bool = False) -> list[Scored]:
    outcomes = run_programs([program(r, c) for r, c in zip(rows, completions)],
                            allow_unisolated_code=allow_unisolated_code)
    return [Scored({"pass@1": float(o.passed)}, o.status, "passed") for o in outcomes]


TASK = CodeTask(
    name="humaneval", file="humaneval.jsonl.gz", rows=164, hub="openai/openai_humaneval (test)",
    fields=("id", "prompt", "test", "entry_point", "canonical_solution"),
    prompt=lambda row: row["prompt"], score=score, gold_text=lambda row: row["canonical_solution"],
    until=STOP, max_new_tokens=512)
