"""``smollab dpo RECIPE``: direct preference optimisation with TRL's ``DPOTrainer``.

The run around the trainer (model, run directory, plan, logs, evaluation, export) is
``trainer_common``'s; this module only hands the preference pairs to the trainer and configures it.
Design decisions and trade-offs:

* The reference model is the starting checkpoint (``model.init_from``, the SFT run), as in SmolLM2.
  With ``precompute_ref_log_probs=True`` and no ``ref_model``, TRL scores every train and held-out pair
  with the policy once, in its constructor, before any update (so the policy *is* the reference then),
  and keeps only the two log-probs per pair: no second model is loaded or kept, so training holds one
  model in memory. The price: a dataset passed to ``evaluate`` after training started cannot get
  reference log-probs, hence the held-out split is given at construction; and a resumed run scores the
  pairs again (TRL's cache of an in-memory dataset lives in a temporary directory).
* Pairs stay conversational (``PreferencePair.record``): TRL renders them with the tokenizer's chat
  template, SmolLM2's, and trains on the completions only. The loader already dropped pairs longer
  than ``data.max_length`` / ``data.max_prompt_length``, so TRL's ``max_length`` truncates nothing.
* Reward accuracy and margins (``rewards/accuracies``, ``rewards/margins``, chosen/rejected rewards and
  log-probs) are TRL's metrics: logged per step in ``log.jsonl`` on the training batches, and measured on
  the held-out pairs before training, every ``train.eval_every_steps`` and at the end (``evals.jsonl``).
"""

from __future__ import annotations

from smollab.post.config import DPORecipe
from smollab.post.conversations import ChatData
from smollab.post.preferences import load_preferences
from smollab.post.trainer_common import (DryRunOption, Method, OutOption, OverridesArgument, OverwriteOption, Plan,
                                         RecipeArgument, ResumeOption, command)


def records(pairs):
    from datasets import Dataset

    return Dataset.from_list([pair.record() for pair in pairs])


def datasets(data: ChatData, _tokenizer):
    return records(data.train), records(data.heldout)


def rows(_recipe: DPORecipe, train_set) -> int:
    return len(train_set)


def describe_rows(recipe: DPORecipe, plan: Plan) -> list[tuple[str, str]]:
    return [("pairs", f"{plan.rows:,} per epoch, prompt ≤ {recipe.data.max_prompt_length:,} and prompt + completion "
                      f"≤ {recipe.data.max_length:,} tokens"),
            ("dpo", f"sigmoid loss, beta {recipe.train.beta:g}; reference = {recipe.model.init_from}, its log-probs "
                    "computed once before training (no reference model kept in memory)")]


def build_trainer(recipe: DPORecipe, model, tokenizer, train_set, heldout_set, arguments: dict):
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**arguments, beta=recipe.train.beta, max_length=recipe.data.max_length,
                       precompute_ref_log_probs=True)
    return DPOTrainer(model=model, args=config, train_dataset=train_set, eval_dataset=heldout_set,
                      processing_class=tokenizer)


METHOD = Method(name="dpo", schema=DPORecipe, examples="pairs", unit="pairs", load_data=load_preferences,
                datasets=datasets, rows=rows, describe_rows=describe_rows, build_trainer=build_trainer)


def dpo(recipe: RecipeArgument, overrides: OverridesArgument = None, out: OutOption = None,
        resume: ResumeOption = False, overwrite: OverwriteOption = False, dry_run: DryRunOption = False) -> None:
    """Direct preference optimisation (TRL DPOTrainer) from an SFT checkpoint, its own reference.

    Writes <out>/hf/step-N (model + chat tokenizer), log.jsonl (loss, reward accuracy and margins per step),
    evals.jsonl (the same on held-out pairs, before training and at eval steps), data_report.json,
    recipe.resolved.yaml, checkpoints/ and tensorboard/.

    Example: smollab dpo recipes/demo-dpo.yaml; on 8 GPUs:
    torchrun --nproc_per_node 8 -m smollab dpo recipes/smollm2-1.7b-dpo.yaml
    """
    command(METHOD, recipe, overrides, out, resume, overwrite, dry_run)
