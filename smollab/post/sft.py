"""``smollab sft RECIPE``: supervised fine-tuning on chat data with TRL's ``SFTTrainer``.

The run around the trainer (model, run directory, plan, logs, evaluation, export) is
``trainer_common``'s; this module only turns conversations into what the trainer reads and configures
it. Design decisions and trade-offs:

* Loss on assistant turns only, exactly the mask that is tested: conversations are tokenized here by
  ``template.assistant_mask`` into ``input_ids`` + ``assistant_masks`` columns. TRL takes a dataset with
  ``input_ids`` as already processed and folds ``assistant_masks`` into ``labels`` (-100 elsewhere),
  whatever ``assistant_only_loss`` says (which would need ``{% generation %}`` markers that SmolLM2's
  template, kept byte-identical, does not have). The cost: conversations are tokenized twice, once by
  the loader to count and cut them, once here.
* Packing without cross-talk: TRL's best-fit-decreasing packing, padding-free (``packing_strategy="bfd"``):
  a micro-batch is one row of whole conversations, each with its own ``position_ids`` from 0. With
  ``sdpa`` (CPU or GPU) transformers 5 derives a block-diagonal causal mask from those positions, so no
  conversation attends to another and each sees the positions it would alone (tested: packed logits
  equal unpacked ones); ``flash_attention_2`` reads the same boundaries as cumulative lengths. Rows hold
  up to ``data.max_length`` tokens, the loader's cut, so packing never truncates. Packing is done once,
  so the same conversations share a row in every epoch (TRL's behaviour; rows are reshuffled).
* Epochs repeat the mixture's epoch 0 (``ChatData.train``): the Trainer counts epochs over one dataset,
  so a mixture that subsamples or repeats a source draws once, not once per epoch.
* ``eos_token`` is ``<|im_end|>``, so the export's tokenizer and generation config stop at the end of
  an assistant turn, as SmolLM2-Instruct's do.
"""

from __future__ import annotations

from smollab.post.config import SFTRecipe
from smollab.post.conversations import ChatData, load_conversations
from smollab.post.template import IM_END, assistant_mask
from smollab.post.trainer_common import (DryRunOption, Method, OutOption, OverridesArgument, OverwriteOption, Plan,
                                         RecipeArgument, ResumeOption, command)


def tokenized(conversations, tokenizer):
    """``input_ids`` + ``assistant_masks`` of each conversation, as a ``datasets.Dataset`` TRL reads as processed."""
    from datasets import Dataset

    masked = [assistant_mask(conversation.messages, tokenizer) for conversation in conversations]
    return Dataset.from_dict({"input_ids": [m.input_ids for m in masked],
                              "assistant_masks": [m.labels_mask for m in masked]})


def datasets(data: ChatData, tokenizer):
    return tokenized(data.train, tokenizer), tokenized(data.heldout, tokenizer)


def rows(recipe: SFTRecipe, train_set) -> int:
    """Rows per epoch: TRL's own packing of the train split, or one conversation per row without packing."""
    if not recipe.train.packing:
        return len(train_set)
    from trl.data_utils import pack_dataset

    return len(pack_dataset(train_set.select_columns(["input_ids"]), recipe.data.max_length, "bfd"))


def describe_rows(recipe: SFTRecipe, plan: Plan) -> list[tuple[str, str]]:
    if not recipe.train.packing:
        return [("rows", f"{plan.rows:,} conversations, one per row, padded per micro-batch")]
    fill = plan.tokens / (plan.rows * recipe.data.max_length) if plan.rows else 0.0
    return [("packing", f"{plan.rows:,} rows of ≤ {recipe.data.max_length:,} tokens per epoch ({fill:.0%} full; "
                        "bfd, padding-free, per-example positions)")]


def build_trainer(recipe: SFTRecipe, model, tokenizer, train_set, heldout_set, arguments: dict):
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(**arguments, max_length=recipe.data.max_length, packing=recipe.train.packing,
                       packing_strategy="bfd", eos_token=IM_END)
    return SFTTrainer(model=model, args=config, train_dataset=train_set, eval_dataset=heldout_set,
                      processing_class=tokenizer)


METHOD = Method(name="sft", schema=SFTRecipe, examples="conversations", unit="rows", load_data=load_conversations,
                datasets=datasets, rows=rows, describe_rows=describe_rows, build_trainer=build_trainer)


def sft(recipe: RecipeArgument, overrides: OverridesArgument = None, out: OutOption = None,
        resume: ResumeOption = False, overwrite: OverwriteOption = False, dry_run: DryRunOption = False) -> None:
    """Supervised fine-tuning on chat data (TRL SFTTrainer): loss on assistant turns, packed without cross-talk.

    Writes <out>/hf/step-N (model + tokenizer with SmolLM2's chat template), log.jsonl, evals.jsonl (held-out
    assistant-token loss, eval.tasks), data_report.json, recipe.resolved.yaml, checkpoints/ and tensorboard/.

    Example: smollab sft recipes/demo-sft.yaml; on 8 GPUs:
    torchrun --nproc_per_node 8 -m smollab sft recipes/smollm2-1.7b-sft.yaml
    """
    command(METHOD, recipe, overrides, out, resume, overwrite, dry_run)
