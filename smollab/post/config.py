"""Post-training recipes: the schemas of ``smollab sft`` and ``smollab dpo``, checked like pretraining's.

A post-training recipe is one YAML file with ``name``, ``out``, ``model.init_from``, a ``data`` section
(``ChatDataConfig`` for SFT, ``PreferenceDataConfig`` for DPO, defined beside their loaders), ``train`` and
``eval``. Overrides (``train.lr=1e-4``) are applied to the raw tree before validation and every failure
is one ``SmollabError`` line naming the field, through the pretraining recipe's own helpers. Every
default lives here. Design decisions:

* Batches count sequences, as the paper does (SmolLM2 SFT: 128 sequences of up to 8192 tokens;
  DPO: 128 pairs). For SFT a sequence is a packed row of up to ``data.max_length`` tokens, so a
  step trains on at most ``global_batch × data.max_length`` tokens; for DPO it is one preference pair.
  A token budget per step would track packing efficiency exactly, but batch sizes would then change
  with the data, and the paper's numbers are in sequences.
* Lengths live in ``data`` only: ``data.max_length`` is both the longest conversation (longer ones are
  cut at a turn boundary by the loader) and the length of a packed row, so TRL never truncates; for
  DPO ``data.max_length`` / ``data.max_prompt_length`` drop over-long pairs and TRL's ``max_length`` is
  set to ``data.max_length``. One number per meaning, at the price of not packing rows longer than
  the longest conversation allowed.
* ``model.init_from`` is required: post-training always starts from a model (a smollab run, an HF
  directory, a hub id, a GGUF or the bundled SmolLM2-135M-Instruct, as ``pretrained.resolve`` accepts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from smollab.errors import SmollabError
from smollab.post.conversations import ChatDataConfig
from smollab.post.preferences import PreferenceDataConfig
from smollab.recipe import BenchmarksConfig, Strict, apply_overrides, format_validation_error, read_tree


class PostModelConfig(Strict):
    init_from: str = Field(description="HF dir | hub id | .gguf | smollab run dir (its newest hf export) | "
                           "smollm2-135m-instruct")
    attn_implementation: Literal["sdpa", "flash_attention_2"] = Field(
        "sdpa", description="sdpa keeps packed examples apart through per-example position_ids (CPU and GPU); "
        "flash_attention_2 (GPU, the flash-attn package) through cumulative sequence lengths, without a dense mask")


class PostEvalConfig(BenchmarksConfig):
    """Benchmarks scored in the loop with the chat template, beside the held-out split (always scored)."""

    tasks: list[str] = Field([], description="task or group names, e.g. [ifeval] (smollab eval --help)")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        from smollab.eval.tasks import expand

        try:
            expand(tasks)
        except SmollabError as err:
            raise ValueError(str(err)) from None
        return tasks


class PostTrainConfig(Strict):
    """What SFT and DPO share; each verb's subclass sets its own learning rate."""

    epochs: float = Field(2.0, gt=0, description="passes over the training split (SmolLM2 SFT and DPO: 2)")
    lr: float = Field(gt=0, description="peak learning rate (AdamW)")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="decay after warmup, to 0 "
                                                              "(constant: stays at lr)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of all steps warming up linearly (SmolLM2: 0.1)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    global_batch: int = Field(128, ge=1, description="sequences per optimizer step over all ranks (SmolLM2: 128); "
                              "accumulation = global_batch / (micro_batch × ranks)")
    micro_batch: int = Field(4, ge=1, description="sequences per forward pass per rank")
    seed: int = Field(42, description="the Trainer's seed and data seed")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 where the device multiplies "
                                                       "it natively, else fp32")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: the first CUDA GPU torch sees, else the CPU")
    compile: bool = Field(False, description="torch.compile the model (TrainingArguments.torch_compile)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass "
                                         "(memory for ~20% time; SmolLM2-1.7B SFT used it)")
    log_every: int = Field(1, ge=1, description="a log.jsonl line every N steps")
    eval_every_steps: int | None = Field(None, ge=1, description="held-out (and eval.tasks) evaluation every N steps; "
                                         "always before training and at the end")
    save_every_steps: int | None = Field(None, ge=1, description="Trainer checkpoint for --resume every N steps; "
                                         "default: at the end of each epoch")
    save_keep: int = Field(2, ge=1, description="newest checkpoints kept")

    @model_validator(mode="after")
    def _accumulation(self) -> PostTrainConfig:
        if self.global_batch % self.micro_batch:
            raise ValueError(f"train.global_batch: {self.global_batch} is not divisible by train.micro_batch "
                             f"{self.micro_batch}; gradient accumulation needs a whole number of micro-batches")
        return self


class SFTTrainConfig(PostTrainConfig):
    lr: float = Field(3e-4, gt=0, description="peak learning rate (SmolLM2-1.7B SFT: 3e-4; 360M/135M: 1e-3)")
    packing: bool = Field(True, description="pack conversations into rows of data.max_length tokens (TRL bfd, "
                          "padding-free: each keeps its own positions, none attends to another); false: one per row")


class DPOTrainConfig(PostTrainConfig):
    lr: float = Field(1e-6, gt=0, description="peak learning rate (SmolLM2 DPO: 1e-6)")
    beta: float = Field(0.5, gt=0, description="strength of the pull towards the reference model (SmolLM2 DPO: 0.5)")


class PostRecipe(Strict):
    name: str = Field(description="run name")
    out: str | None = Field(None, description="run directory; default runs/<name>")
    model: PostModelConfig = Field(description="the model training starts from")
    eval: PostEvalConfig = PostEvalConfig()

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name}")


class SFTRecipe(PostRecipe):
    data: ChatDataConfig
    train: SFTTrainConfig = SFTTrainConfig()


class DPORecipe(PostRecipe):
    data: PreferenceDataConfig
    train: DPOTrainConfig = DPOTrainConfig()


def load_post_recipe(path: str | Path, overrides: list[str], schema: type[PostRecipe]) -> PostRecipe:
    """Read, override and validate a post-training recipe; any problem is one ``SmollabError`` line."""
    path = Path(path)
    tree = read_tree(path, "name, model, data")
    apply_overrides(tree, overrides)
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        raise SmollabError(format_validation_error(str(path), err)) from None
