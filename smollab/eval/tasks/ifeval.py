"""IFEval (541 prompts): does the response follow every verifiable instruction in the prompt?

Reports the four standard numbers: prompt-level (all instructions followed) and instruction-level
(each instruction on its own), each strict and loose. SmolLM2's cards report "IFEval (Average
prompt/inst)". Instruct models should be run with ``--chat-template``. Generation is greedy, up to
1,280 new tokens, which makes this the slowest task on CPU.
"""

from collections.abc import Sequence

from smollab.eval.ifeval import follows
from smollab.eval.tasks.base import GenerativeTask, Scored


def score(rows: Sequence[dict], responses: Sequence[str]) -> list[Scored]:
    out = []
    for row, response in zip(rows, responses):
        pairs = list(zip(row["instruction_id_list"], row["kwargs"]))
        strict = [float(follows(i, response, k, loose=False)) for i, k in pairs]
        loose = [float(follows(i, response, k, loose=True)) for i, k in pairs]
        out.append(Scored({
            "prompt_level_strict_acc": float(all(strict)), "inst_level_strict_acc": strict,
            "prompt_level_loose_acc": float(all(loose)), "inst_level_loose_acc": loose,
        }, {"strict": strict, "loose": loose}, row["instruction_id_list"]))
    return out


TASK = GenerativeTask(
    name="ifeval", file="ifeval.jsonl.gz", rows=541, hub="google/IFEval (train)",
    fields=("id", "prompt", "instruction_id_list", "kwargs"), prompt=lambda row: row["prompt"], score=score,
    gold_text=lambda row: "", text=lambda row: (row["prompt"], ""), max_new_tokens=1280)
