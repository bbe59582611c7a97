"""Hand smollab's model adapter to lm-evaluation-harness, so any of its tasks runs on a smollab model.

``SmolLMForLMEval`` is an ``lm_eval.api.model.LM`` whose three calls forward to ``SmolLM``; lm-eval
builds the prompts, applies its own metrics and writes its own output. lm-eval is an optional
dependency, imported only here, so the core evaluator keeps working without it.
"""

import json
from pathlib import Path

from smollab.errors import SmollabError
from smollab.eval.harness import GenerationRequest, SmolLM

try:
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager
except ImportError:  # pragma: no cover - exercised only without the extra installed
    raise SmollabError("--harness lm-eval needs lm-evaluation-harness; `pip install lm-eval==0.4.13`.") from None


class SmolLMForLMEval(LM):
    def __init__(self, lm: SmolLM):
        super().__init__()
        self.lm = lm

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self.lm.loglikelihood([r.args for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self.lm.loglikelihood_rolling([r.args[0] for r in requests])

    def generate_until(self, requests, disable_tqdm: bool = False):
        out = []
        for r in requests:
            context, kwargs = r.args
            until = kwargs.get("until") or []
            out.append(GenerationRequest(context, tuple([until] if isinstance(until, str) else until),
                                         int(kwargs.get("max_gen_toks", 256))))
        return self.lm.generate_until(out)

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        return self.lm.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                     add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer.name_or_path.replace("/", "__")

    def chat_template(self, chat_template=False):
        return self.lm.tokenizer.chat_template if chat_template else None


def run(lm: SmolLM, tasks: list[str], *, limit: int | None, include_path: Path | None = None,
        log_samples: bool = False) -> dict:
    """lm-eval's ``simple_evaluate`` over the adapter; returns lm-eval's own results dict."""
    manager = None
    if include_path:  # indexing lm-eval's own ~14k task files takes most of a minute; skip it when possible
        manager = TaskManager(include_path=str(include_path), include_defaults=False)
        if not set(tasks) <= set(manager.all_tasks):
            manager = None
    manager = manager or TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise SmollabError(f"lm-eval does not know task(s) {', '.join(unknown)}; check `lm-eval ls tasks` "
                           "or pass --include-path DIR with your task YAMLs.")
    results = simple_evaluate(model=SmolLMForLMEval(lm), tasks=tasks, limit=limit, task_manager=manager,
                              log_samples=log_samples, apply_chat_template=lm.chat_template,
                              batch_size=lm.batch_size)
    return json.loads(json.dumps(results, default=str))
