"""What ``smollab sft`` and ``smollab dpo`` share: the run around a TRL trainer, from recipe to HF export.

Each verb only says how to load its data and configure its TRL trainer (a ``Method``); this module does
the rest once for both: the starting model and its chat tokenizer, the run directory, the plan,
``log.jsonl``, tensorboard, in-loop evaluation and the export. Design decisions and trade-offs:

* The plan is computed, not read off the Trainer: the rows the trainer iterates (packed rows for SFT,
  pairs for DPO) and transformers' own steps-per-epoch rule (``Plan``) give the steps, so ``--dry-run``
  prints what a run will do from the model's config alone, without its weights. A real run prints the
  plan from the trainer's own datasets and warns if the Trainer counts other steps.
* ``--dry-run`` does not stream hub data (SmolTalk is 1.1M conversations): with a hub source it prints
  the plan without the data counts and says so. A model that does not exist yet (the run a demo or
  DPO recipe starts from) is named as missing, and tokens are counted with the bundled SmolLM2
  tokenizer instead, saying so. Recipe errors (fields, sources, lengths) still fail in one line.
* Run directory: one holding ``log.jsonl`` or a checkpoint is not trained over without ``--resume``
  (continue from the newest ``checkpoints/checkpoint-N``, optimizer and Trainer state included) or
  ``--overwrite`` (delete what a run writes, ``RUN_OUTPUTS``). A resumed run drops the log and eval lines
  after its checkpoint, which it redoes.
* Logs: ``log.jsonl`` gets one line per logged step (the Trainer's and TRL's metrics, ``tokens`` forwarded
  so far, padding included, and tokens/s since the previous line); tensorboard through transformers' own
  callback into ``<out>/tensorboard``; one rich progress bar instead of tqdm bars and printed dicts.
* In-loop evaluation: ``Trainer.evaluate`` on the held-out split (before training, every
  ``train.eval_every_steps``, at the end; SFT: assistant-token loss, the mean of the per-batch means;
  DPO: reward accuracy and margins, log-probs), plus ``eval.tasks`` scored on the live model by smollab's
  harness with the chat template, on the main rank, one ``evals.jsonl`` line per evaluation. Not through
  ``smollab.eval.evaluate.run_in_loop``, which formats prompts without the chat template (wrong for a
  chat model's IFEval) and writes a line of its own the held-out metrics cannot join. Scoring draws no
  random numbers (greedy generation, eval mode), so training goes on as it would without it.
* Checkpoints are the Trainer's (``<out>/checkpoints``, newest ``train.save_keep`` kept), for ``--resume``;
  the model is exported once, at the end, to ``<out>/hf/step-N`` with its tokenizer carrying SmolLM2's
  chat template, where ``pretrained.resolve(<out>)`` finds it: the next stage's ``init_from``, ``smollab
  chat`` and ``smollab eval`` all take the run directory.
* Under ``torchrun`` transformers/Accelerate run DDP; every rank loads the data (a pure function of the
  recipe, so all agree) and only the main rank writes files. TRL imports lazily (seconds), so registering
  the verbs costs the CLI nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback

from smollab import pretrained
from smollab.console import table_console
from smollab.devices import resolve_device
from smollab.errors import SmollabError
from smollab.eval.evaluate import check_in_loop_tasks
from smollab.paths import ASSETS, remove_run_outputs
from smollab.post.config import PostEvalConfig, PostRecipe, PostTrainConfig, load_post_recipe
from smollab.post.conversations import ChatData
from smollab.post.template import IM_END, with_chat_template

console = Console(stderr=True)
RUN_OUTPUTS = ("log.jsonl", "evals.jsonl", "checkpoints", "hf", "tensorboard", "data_report.json",
               "recipe.resolved.yaml")
"""What a post-training run writes into its directory; ``--overwrite`` deletes exactly these."""
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
_LOG_FIELDS = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "epoch": "epoch"}
_NOT_LOGGED = {"num_tokens", "num_input_tokens_seen"}  # TRL's token count restarts on resume; ``tokens`` does not
_EVAL_BOOKKEEPING = {"runtime", "samples_per_second", "steps_per_second", "epoch", "num_tokens",
                     "num_input_tokens_seen"}


@dataclass(frozen=True)
class Method:
    """One post-training verb: its recipe schema, its data and its TRL trainer."""

    name: str
    schema: type[PostRecipe]
    examples: str
    """what one training example is called in the plan: conversations, pairs"""
    unit: str
    """what ``train.global_batch`` counts: rows (packed or not), pairs"""
    load_data: Callable[[object, PreTrainedTokenizerBase], ChatData]
    datasets: Callable[[ChatData, PreTrainedTokenizerBase], tuple]
    """``(train, heldout)`` ``datasets.Dataset``s in the form the trainer reads"""
    rows: Callable[[PostRecipe, object], int]
    """rows the trainer will iterate per epoch, computed from the train dataset as TRL will (dry run)"""
    describe_rows: Callable[[PostRecipe, "Plan"], list[tuple[str, str]]]
    build_trainer: Callable[..., object]
    """``(recipe, model, tokenizer, train, heldout | None, arguments) -> Trainer``; ``arguments`` are the
    TrainingArguments fields this module sets, for the verb's own config class"""


# ---- the plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What a run will do, from the data and the batch settings.

    Steps follow ``Trainer.set_initial_training_values`` over a dataloader sharded across ranks by Accelerate."""

    examples: int
    tokens: int
    rows: int
    heldout: int
    heldout_tokens: int
    train: PostTrainConfig
    world: int

    @property
    def steps_per_epoch(self) -> int:
        batches_per_rank = math.ceil(math.ceil(self.rows / self.train.micro_batch) / self.world)
        return max(math.ceil(batches_per_rank / accumulation(self.train, self.world)), 1)

    @property
    def total_steps(self) -> int:
        return math.ceil(self.train.epochs * self.steps_per_epoch)

    @property
    def warmup_steps(self) -> int:
        return math.ceil(self.total_steps * self.train.warmup_ratio)


def plan_of(data: ChatData, rows: int, recipe: PostRecipe, world: int) -> Plan:
    return Plan(len(data.train), sum(item.num_tokens for item in data.train), rows, len(data.heldout),
                sum(item.num_tokens for item in data.heldout), recipe.train, world)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def accumulation(train: PostTrainConfig, world: int) -> int:
    """Micro-batches per optimizer step on each rank (``check_batch`` makes it whole)."""
    return train.global_batch // (train.micro_batch * world)


def check_batch(train: PostTrainConfig, world: int) -> None:
    per_pass = train.micro_batch * world
    if train.global_batch % per_pass:
        raise SmollabError(f"train.global_batch: {train.global_batch} is not divisible by micro_batch × ranks = "
                           f"{train.micro_batch} × {world}; pick a multiple of {per_pass}")


def plan_table(recipe: PostRecipe, method: Method, model_line: str, plan: Plan | None, missing: str | None) -> Table:
    """The resolved plan as a two-column table; ``missing`` says why the data rows are absent (``plan`` is None)."""
    train = recipe.train
    table = Table(title=f"smollab {method.name}: {recipe.name} → {recipe.out_dir}", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("model", model_line)
    if plan is None:
        table.add_row("data", missing)
    else:
        table.add_row("data", f"{plan.examples:,} {method.examples} ({plan.tokens:,} tokens) per epoch; "
                              f"{plan.heldout:,} held out ({plan.heldout_tokens:,} tokens)")
        for name, value in method.describe_rows(recipe, plan):
            table.add_row(name, value)
    world = world_size() if plan is None else plan.world
    table.add_row("batch", f"{train.global_batch} {method.unit} per step = micro_batch {train.micro_batch} × "
                           f"{world} rank(s) × {accumulation(train, world)} accumulation")
    if plan is None:
        table.add_row("steps", "need the data counts")
        warmup = f"{train.warmup_ratio:g} of the steps"
    else:
        table.add_row("steps", f"{plan.steps_per_epoch:,} per epoch × {train.epochs:g} epochs = {plan.total_steps:,}")
        warmup = f"{plan.warmup_steps:,} steps ({train.warmup_ratio:g})"
    table.add_row("lr", f"{train.schedule}, peak {train.lr:g}, linear warmup {warmup}, "
                        f"weight decay {train.weight_decay:g}")
    every = f"every {train.eval_every_steps} steps, " if train.eval_every_steps else ""
    tasks = f"; {', '.join(recipe.eval.tasks)} (limit {recipe.eval.limit})" if recipe.eval.tasks else ""
    nothing_held_out = plan is not None and plan.heldout == 0
    table.add_row("eval", "none: nothing is held out (data.heldout_fraction)" if nothing_held_out
                  else f"held-out split before training, {every}at the end{tasks}")
    return table


def sources_table(report: dict) -> Table:
    """Per source: records read, kept for training and held out, cut, and dropped per reason (nonzero ones)."""
    table = Table("source", "read", "train", "held out", "truncated", "dropped", title="data")
    for name, source in report["sources"].items():
        dropped = ", ".join(f"{reason} {n:,}" for reason, n in source["dropped"].items() if n) or "-"
        table.add_row(name, f"{source['read']:,}", f"{source['train']:,}", f"{source['heldout']:,}",
                      f"{source['truncated']:,}", dropped)
    return table


# ---- the starting model ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StartingModel:
    path: str
    """what ``from_pretrained`` reads: a local directory or a hub id"""
    config: object


def starting_model(recipe: PostRecipe, offline: bool = False) -> StartingModel:
    """``model.init_from`` resolved and its config read (weights untouched); one error line when it cannot be.

    ``offline``: read only local directories and the Hugging Face cache (what ``--dry-run`` does)."""
    spec = recipe.model.init_from
    try:
        path = pretrained.resolve(spec)
    except SmollabError as err:
        raise SmollabError(f"model.init_from: {err}") from None
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=offline)
    except (OSError, ValueError) as err:
        where = "in the Hugging Face cache" if offline else f"on the Hugging Face hub ({_first_line(err)})"
        raise SmollabError(f"model.init_from: '{spec}' is no local model directory, nor {where}; if it names a "
                           "run directory, train that run first, else download the model where the hub is reachable"
                           ) from None
    return StartingModel(path, config)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def chat_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    return with_chat_template(AutoTokenizer.from_pretrained(path))


def check_geometry(recipe: PostRecipe, config, tokenizer: PreTrainedTokenizerBase) -> None:
    """Recipe checks that need the model's config: lengths against its positions, the tokenizer against its vocab."""
    text = config.get_text_config()
    if recipe.data.max_length > text.max_position_embeddings:
        raise SmollabError(
            f"data.max_length: {recipe.data.max_length:,} exceeds the {text.max_position_embeddings:,} positions of "
            f"model {recipe.model.init_from}; lower it to at most {text.max_position_embeddings:,}, or start from a "
            "model with more positions")
    if len(tokenizer) > text.vocab_size:
        raise SmollabError(f"model.init_from: its tokenizer has {len(tokenizer):,} tokens, more than the model's "
                           f"vocab_size {text.vocab_size:,}; use the tokenizer the model was trained with")


def describe_model(recipe: PostRecipe, start: StartingModel) -> str:
    text = start.config.get_text_config()
    with torch.device("meta"):
        parameters = sum(p.numel() for p in AutoModelForCausalLM.from_config(start.config).parameters())
    where = "" if start.path == recipe.model.init_from else f" → {start.path}"
    return (f"{recipe.model.init_from}{where} ({start.config.model_type}, {text.num_hidden_layers} layers × "
            f"{text.hidden_size}, {text.max_position_embeddings:,} positions, vocab {text.vocab_size:,}, "
            f"{parameters / 1e6:,.1f}M parameters; attention {recipe.model.attn_implementation})")


# ---- the run directory -------------------------------------------------------------------------------

def prepare_run_dir(recipe: PostRecipe, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to train over a run unless told to."""
    from transformers.trainer_utils import get_last_checkpoint

    out = recipe.out_dir
    if out.exists() and not out.is_dir():
        raise SmollabError(f"--out {out} is a file, not a directory; give a directory path for the run")
    if resume and overwrite:
        raise SmollabError("--resume continues a run and --overwrite deletes it; give only one of them")
    checkpoints = out / "checkpoints"
    newest = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if ((out / "log.jsonl").exists() or newest) and not (resume or overwrite):
        raise SmollabError(f"run directory {out} holds a run; use --resume to continue it, or --overwrite to start "
                           "over")
    if resume:
        if newest is None:
            raise SmollabError(f"--resume: run directory {out} has no checkpoint (checkpoints/checkpoint-N) to "
                               "continue from; run without --resume, or with --overwrite to start over")
        return Path(newest)
    if overwrite and is_main():
        remove_run_outputs(out, RUN_OUTPUTS)
    return None


def _drop_lines_after(path: Path, step: int) -> None:
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def write_run_files(recipe: PostRecipe, data: ChatData) -> None:
    recipe.out_dir.mkdir(parents=True, exist_ok=True)
    resolved = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
    (recipe.out_dir / "recipe.resolved.yaml").write_text(resolved)
    (recipe.out_dir / "data_report.json").write_text(json.dumps(data.report(), indent=1))


# ---- callbacks: log.jsonl, evals.jsonl, progress ------------------------------------------------------

def score_tasks(model, tokenizer: PreTrainedTokenizerBase, eval_config: PostEvalConfig, step: int, autocast,
                out_dir: Path) -> dict:
    """``eval.tasks`` on the live model with the chat template: metrics, standard errors and items per task."""
    from smollab.eval.evaluate import evaluate
    from smollab.eval.harness import SmolLM

    was_training = model.training
    model.eval()
    try:
        lm = SmolLM(model, tokenizer, batch_size=eval_config.batch_size, chat_template=True, name=f"step-{step}",
                    max_length=model.config.max_position_embeddings)
        with torch.no_grad(), autocast:
            results, _ = evaluate(lm, eval_config.tasks, limit=eval_config.limit,
                                  allow_unisolated_code=eval_config.allow_unisolated_code, judge=eval_config.judge,
                                  out_dir=out_dir)
    finally:
        model.train(was_training)
    tasks = results["tasks"]
    return {"metrics": {name: {m: v["value"] for m, v in t["metrics"].items()} for name, t in tasks.items()},
            "stderr": {name: {m: v["stderr"] for m, v in t["metrics"].items() if v["stderr"] is not None}
                       for name, t in tasks.items()},
            "items": {name: t["items"] for name, t in tasks.items()}}


class RunLog(TrainerCallback):
    """``log.jsonl`` (training logs) and ``evals.jsonl`` (evaluations), written by the main rank."""

    def __init__(self, out_dir: Path, tokenizer: PreTrainedTokenizerBase, eval_config: PostEvalConfig, autocast,
                 resumed_step: int | None):
        self.log_path, self.evals_path = out_dir / "log.jsonl", out_dir / "evals.jsonl"
        self.tokenizer, self.eval_config, self.autocast = tokenizer, eval_config, autocast
        if resumed_step is not None and is_main():
            _drop_lines_after(self.log_path, resumed_step)
            _drop_lines_after(self.evals_path, resumed_step)
        self.last_time, self.last_tokens = time.perf_counter(), 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_time, self.last_tokens = time.perf_counter(), state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or "loss" not in logs:  # eval and end-of-training summaries go elsewhere
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        line = {"step": state.global_step, **{ours: logs.get(theirs) for theirs, ours in _LOG_FIELDS.items()},
                "tokens": tokens, "tok_s": (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)}
        line |= {k: v for k, v in logs.items()
                 if k not in _LOG_FIELDS and k not in _NOT_LOGGED and not k.startswith("train_")}
        self.last_time, self.last_tokens = now, tokens
        with self.log_path.open("a") as f:
            f.write(json.dumps(line) + "\n")

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        started = time.perf_counter()
        heldout = {k.removeprefix("eval_"): v for k, v in metrics.items()
                   if k.removeprefix("eval_") not in _EVAL_BOOKKEEPING}
        line = {"step": state.global_step, "epoch": state.epoch or 0.0, "tokens": state.num_input_tokens_seen,
                "heldout": heldout}
        shown = {f"heldout {k}": v for k, v in heldout.items() if k in ("loss", "rewards/accuracies", "rewards/margins")}
        if self.eval_config.tasks:
            from smollab.eval.evaluate import headline

            line |= score_tasks(model, self.tokenizer, self.eval_config, state.global_step, self.autocast,
                                self.log_path.parent)
            shown |= {name: m[headline(m)] for name, m in line["metrics"].items()}
        line["seconds"] = metrics.get("eval_runtime", 0.0) + time.perf_counter() - started
        with self.evals_path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        console.print(f"eval @ step {state.global_step}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()),
                      soft_wrap=True, highlight=False)


class RichProgress(TrainerCallback):
    """One progress bar (steps, loss, time left) on the main rank, in place of transformers' printed logs."""

    def __init__(self, name: str):
        self.name, self.progress = name, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), console=console)
            self.progress.start()
            self.bar = self.progress.add_task(self.name, total=state.max_steps, completed=state.global_step,
                                              loss=float("nan"))

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.update(self.bar, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress and "loss" in logs:
            self.progress.update(self.bar, loss=logs["loss"])

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.stop()


# ---- the run -----------------------------------------------------------------------------------------

def training_arguments(recipe: PostRecipe, device: torch.device, bf16: bool, world: int, resumed: bool,
                       evaluates: bool) -> dict:
    """The TrainingArguments fields both verbs set from the recipe (TRL's SFTConfig/DPOConfig take them all)."""
    train = recipe.train
    return dict(
        output_dir=str(recipe.out_dir / "checkpoints"), num_train_epochs=train.epochs, learning_rate=train.lr,
        lr_scheduler_type=SCHEDULERS[train.schedule], warmup_steps=train.warmup_ratio, weight_decay=train.weight_decay,
        per_device_train_batch_size=train.micro_batch, per_device_eval_batch_size=train.micro_batch,
        gradient_accumulation_steps=accumulation(train, world), seed=train.seed,
        data_seed=train.seed, bf16=bf16, use_cpu=device.type == "cpu", torch_compile=train.compile,
        activation_checkpointing=train.gradient_checkpointing, logging_steps=train.log_every, logging_first_step=True,
        eval_strategy="steps" if evaluates else "no", eval_on_start=evaluates and not resumed,
        save_strategy="steps" if train.save_every_steps else "epoch", save_steps=train.save_every_steps or 500,
        save_total_limit=train.save_keep, include_num_input_tokens_seen="all", report_to="none", disable_tqdm=True,
    )


def _check_attention(recipe: PostRecipe) -> None:
    from transformers.utils import is_flash_attn_2_available

    if recipe.model.attn_implementation == "flash_attention_2" and not is_flash_attn_2_available():
        raise SmollabError("model.attn_implementation: flash_attention_2 needs a CUDA GPU and the flash-attn "
                           "package (pip install flash-attn --no-build-isolation); set model.attn_implementation=sdpa "
                           "otherwise")


def _install_callbacks(trainer, recipe: PostRecipe, method: Method, tokenizer, bf16: bool, resumed_step: int | None):
    from torch.utils.tensorboard import SummaryWriter
    from transformers import PrinterCallback
    from transformers.integrations import TensorBoardCallback

    trainer.remove_callback(PrinterCallback)
    autocast = torch.autocast(trainer.args.device.type, dtype=torch.bfloat16, enabled=bf16)
    trainer.add_callback(RunLog(recipe.out_dir, tokenizer, recipe.eval, autocast, resumed_step))
    trainer.add_callback(RichProgress(method.name))
    if is_main():
        purge = None if resumed_step is None else resumed_step + 1
        trainer.add_callback(TensorBoardCallback(SummaryWriter(str(recipe.out_dir / "tensorboard"), purge_step=purge)))


def export(trainer, out_dir: Path) -> Path:
    """The trained model and its chat tokenizer as ``<out>/hf/step-N``, published by one rename."""
    target = out_dir / "hf" / f"step-{trainer.state.global_step}"
    staging = target.with_name(f".tmp-{target.name}")
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        (staging / "training_args.bin").unlink(missing_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    trainer.accelerator.wait_for_everyone()
    return target


def run(recipe: PostRecipe, method: Method, resume: bool = False, overwrite: bool = False) -> Path:
    """Train ``recipe`` with ``method``'s trainer; returns the HF export of the final model."""
    from smollab.train.parallel import resolve_precision

    device = resolve_device(recipe.train.device, "train.device")
    world = world_size()
    check_batch(recipe.train, world)
    checkpoint = prepare_run_dir(recipe, resume, overwrite)
    resumed_step = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None
    check_in_loop_tasks(recipe.eval)
    _check_attention(recipe)
    start = starting_model(recipe)
    tokenizer = chat_tokenizer(start.path)
    check_geometry(recipe, start.config, tokenizer)
    data = method.load_data(recipe.data, tokenizer)
    train_set, heldout_set = method.datasets(data, tokenizer)
    if recipe.eval.tasks and not len(heldout_set):
        raise SmollabError("eval.tasks: in-loop evaluation runs on the held-out split, and nothing is held out; "
                           "raise data.heldout_fraction above 0")
    bf16 = resolve_precision(recipe.train.precision, device) == torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(start.path, dtype=torch.float32,
                                                 attn_implementation=recipe.model.attn_implementation)
    arguments = training_arguments(recipe, device, bf16, world, resumed=checkpoint is not None,
                                   evaluates=len(heldout_set) > 0)
    trainer = method.build_trainer(recipe, model, tokenizer, train_set, heldout_set if len(heldout_set) else None,
                                   arguments)
    plan = plan_of(data, len(trainer.train_dataset), recipe, world)
    trainer.args.eval_steps = recipe.train.eval_every_steps or plan.total_steps  # null: at the end only
    if is_main():
        write_run_files(recipe, data)
        precision = f"{'bf16' if bf16 else 'fp32'} on {device.type}"
        table_console(stderr=True).print(plan_table(recipe, method, f"{describe_model(recipe, start)}; {precision}",
                                                    plan, None))
    _install_callbacks(trainer, recipe, method, tokenizer, bf16, resumed_step)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if trainer.state.max_steps != plan.total_steps and is_main():
        console.print(f"[yellow]warning:[/] the Trainer ran {trainer.state.max_steps:,} steps where the plan said "
                      f"{plan.total_steps:,}; report this as a bug of smollab's plan", soft_wrap=True)
    return export(trainer, recipe.out_dir)


def dry_run(recipe: PostRecipe, method: Method) -> None:
    """Check the recipe, the model's config and the local data, and print the plan; no weights, no training."""
    world = world_size()
    check_batch(recipe.train, world)
    check_in_loop_tasks(recipe.eval)
    try:
        start = starting_model(recipe, offline=True)
    except SmollabError as err:
        tokenizer = chat_tokenizer(ASSETS / "tokenizer" / "smollm2")
        model_line = (f"not available here: {str(err).removeprefix('model.init_from: ')} (--dry-run reads nothing "
                      "from the hub); token counts below use the bundled SmolLM2 tokenizer")
    else:
        tokenizer = chat_tokenizer(start.path)
        check_geometry(recipe, start.config, tokenizer)
        model_line = f"{describe_model(recipe, start)}; weights not loaded"
    stdout = table_console()
    hub = [name for name, source in recipe.data.sources.items() if source.hf]
    if hub:
        missing = (f"not read: {', '.join(hub)} stream from the Hugging Face hub, which --dry-run does not do "
                   f"(counts per reason, examples and steps need the hub data; `smollab {method.name}` reads and "
                   "reports them when it starts)")
        stdout.print(plan_table(recipe, method, model_line, None, missing))
        return
    data = method.load_data(recipe.data, tokenizer)
    train_set, _ = method.datasets(data, tokenizer)
    plan = plan_of(data, method.rows(recipe, train_set), recipe, world)
    stdout.print(sources_table(data.report()))
    stdout.print(plan_table(recipe, method, model_line, plan, None))


# ---- the command line --------------------------------------------------------------------------------

RecipeArgument = Annotated[Path, typer.Argument(help="post-training recipe YAML (recipes/demo-sft.yaml, ...)")]
OverridesArgument = Annotated[list[str] | None, typer.Argument(
    help="dotted overrides, e.g. train.lr=1e-4 data.sources.oasst.limit=50")]
OutOption = Annotated[str | None, typer.Option(help="run directory (default: the recipe's out, or runs/<name>)")]
ResumeOption = Annotated[bool, typer.Option(help="continue from the newest checkpoint in <out>/checkpoints")]
OverwriteOption = Annotated[bool, typer.Option(help="delete the run directory's logs, checkpoints, exports and "
                                               "evals, then start over")]
DryRunOption = Annotated[bool, typer.Option(help="check the recipe, the model's config and the local data, print "
                                            "the plan; load no weights, train nothing")]


def command(method: Method, recipe: Path, overrides: list[str] | None, out: str | None, resume: bool,
            overwrite: bool, dry_run_only: bool) -> None:
    """The body of ``smollab sft`` / ``smollab dpo``."""
    loaded = load_post_recipe(recipe, (overrides or []) + ([f"out={out}"] if out else []), method.schema)
    if dry_run_only:
        dry_run(loaded, method)
        return
    hf_dir = run(loaded, method, resume=resume, overwrite=overwrite)
    if is_main():
        console.print(f"HF model with SmolLM2's chat template at {hf_dir} (end of turn: {IM_END}); "
                      f"talk to it: smollab chat {loaded.out_dir}", soft_wrap=True, highlight=False)
