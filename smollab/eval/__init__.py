"""Evaluation: SmolLM2's benchmark formulations on vendored data, behind lm-eval's model contract.

``harness`` is the model adapter (loglikelihood, loglikelihood_rolling, generate_until),
``tasks`` one module per benchmark, ``metrics`` the scoring, ``sandbox`` code execution,
``evaluate`` the runner (and ``run_in_loop`` for training), ``lm_eval_bridge`` the door to
lm-evaluation-harness's own tasks, and ``cli`` the ``smollab eval`` verb.
"""

from smollab.eval.evaluate import run_in_loop
from smollab.eval.harness import GenerationRequest, SmolLM

__all__ = ["GenerationRequest", "SmolLM", "run_in_loop"]
