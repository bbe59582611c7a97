"""The pretraining loop: staged mixtures, WSD, grad accumulation, bf16, FSDP2, atomic checkpoints.

One loop for a 2-core CPU and for ``torchrun`` on many GPUs. A step is ``tokens_per_step`` tokens
split into micro-batches over ranks; the loss of a step is the mean over all its tokens whatever
the rank count, so the optimisation is the same under any data-parallel degree. Everything a step
needs (stage, LR, samples) is a pure function of the step number, which keeps resume down to
"load weights + optimizer, continue at step k". Side work (export, evaluation) happens only after
a checkpoint is published, so a crash during it never costs training state.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.tensorboard import SummaryWriter
from transformers import AutoConfig, AutoModelForCausalLM

from smollab import pretrained
from smollab.data.heldout import training_streams
from smollab.data.mixture import MixtureSampler, Schedule, StagePlan
from smollab.errors import SmollabError
from smollab.eval.evaluate import check_in_loop_tasks
from smollab.launch import check_world
from smollab.mix.between_stages import decide, rule_targets, rules_due
from smollab.mix.within_stage import OnlineMixing
from smollab.paths import remove_run_outputs
from smollab.presets import build_config, count_parameters
from smollab.recipe import Recipe, dump_recipe
from smollab.tokenizer import tokenizer_for_recipe
from smollab.train import checkpoint
from smollab.train.loss import CausalLMLoss
from smollab.train.parallel import (
    Runtime,
    all_reduce_sum,
    barrier,
    bf16_autocast,
    flops_per_token,
    init_runtime,
    parallelize,
    peak_flops,
    resolve_precision,
    use_deterministic_kernels,
)
from smollab.train.profile import StepProfiler
from smollab.train.schedule import WSD
from smollab.train.spike import SpikeGuard, give_up_message, skipped_windows

console = Console(stderr=True)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    final_loss: float
    loss_per_source: dict[str, float]
    hf_dir: Path | None


def model_config(recipe: Recipe, vocab_size: int, eos_id: int | None = None):
    """The architecture to train: the preset (+ overrides), or the config of ``init_from``.

    A preset's bos/eos ids become ``eos_id``, the document separator training writes
    (``data.eos``), so the exported config names the token the model learned to end documents with.
    """
    if recipe.model.init_from:
        return AutoConfig.from_pretrained(pretrained.resolve(recipe.model.init_from))
    config = build_config(recipe.model, vocab_size)
    if eos_id is not None:
        config.bos_token_id = config.eos_token_id = eos_id
    return config


def check_geometry(recipe: Recipe, config, vocab_size: int, world: int) -> None:
    """Recipe checks that need the model or the rank count, with the same one-line errors."""
    if recipe.batch.seq_len > config.max_position_embeddings:  # a stage's own seq_len may exceed them: it extends the context
        raise SmollabError(
            f"batch.seq_len: {recipe.batch.seq_len} exceeds the model's {config.max_position_embeddings} positions; "
            "lower it, raise model.max_position_embeddings, or extend the context in a stage of its own (stages.N.seq_len)"
        )
    check_world(recipe, world)
    if vocab_size > config.vocab_size:
        raise SmollabError(
            f"tokenizer: {vocab_size} tokens do not fit the model's vocab_size {config.vocab_size}; "
            "use a matching tokenizer or preset"
        )


def build_model(recipe: Recipe, config) -> torch.nn.Module:
    if recipe.model.init_from:
        with checkpoint.quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                pretrained.resolve(recipe.model.init_from), dtype=torch.float32, attn_implementation="sdpa"
            )
    else:
        torch.manual_seed(recipe.train.seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def set_rope_theta(model, theta: float) -> None:
    """Context extension: a new RoPE base (SmolLM2 used θ 10k → 130k for 2k → 8k)."""
    if model.config.rope_parameters.get("rope_type", "default") != "default":
        raise SmollabError(f"stages.N.rope_theta: the model's RoPE is '{model.config.rope_parameters['rope_type']}', "
                           "and a plain θ change (SmolLM2's) applies to default RoPE only; drop rope_theta from the stage")
    model.config.rope_parameters = {**model.config.rope_parameters, "rope_theta": float(theta)}
    rotary = model.model.rotary_emb
    inv_freq, _ = rotary.compute_default_rope_parameters(model.config)
    with torch.no_grad():  # in place: the module (and any compiled graph or FSDP wrapping over it) stays the same
        rotary.inv_freq.copy_(inv_freq)
        rotary.original_inv_freq.copy_(inv_freq)


def use_stage_context(model, sampler: MixtureSampler, stage: StagePlan, base_positions: int) -> None:
    """The context in force in ``stage``: the latest ``rope_theta`` of it or of an earlier stage, and
    ``max_position_embeddings`` grown from ``base_positions`` (the architecture's) to the longest ``seq_len``
    trained so far.

    RoPE has no learned positions, so growing them changes no tensor; the count is what the export
    promises a user, so it says what the model has been trained at, never more.
    """
    theta = next((p.rope_theta for p in reversed(sampler.stages[: stage.index + 1]) if p.rope_theta), None)
    if theta and theta != model.config.rope_parameters["rope_theta"]:
        set_rope_theta(model, theta)
    model.config.max_position_embeddings = max([base_positions] + [p.seq_len for p in sampler.stages[: stage.index + 1]])


def make_optimizer(model, recipe: Recipe, runtime: Runtime) -> torch.optim.Optimizer:
    optim = recipe.optim
    return torch.optim.AdamW(
        model.parameters(), lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay,
        fused=runtime.device.type in ("cuda", "cpu"),
    )


RUN_OUTPUTS = ("log.jsonl", "evals.jsonl", "checkpoints", "hf", "tensorboard", "profile")
"""What training writes into a run directory; ``--overwrite`` deletes exactly these (shards and tokenizer stay)."""


def prepare_run_dir(recipe: Recipe, resume: bool, overwrite: bool, runtime: Runtime) -> None:
    """Refuse to train over a run's history unless told to continue it or to start it over.

    A run directory "holds a run" once it has a step log or a checkpoint. Every rank checks; only
    the main rank deletes (``--overwrite``), before any rank writes.
    """
    recipe.check_out_dir()
    out_dir = recipe.out_dir
    holds_run = (out_dir / "log.jsonl").exists() or bool(checkpoint.step_dirs(out_dir / "checkpoints"))
    if resume and overwrite:
        raise SmollabError("--resume continues a run and --overwrite deletes it; give only one of them")
    if holds_run and not (resume or overwrite):
        raise SmollabError(f"run directory {out_dir} holds a run; use --resume to continue it, or --overwrite to start over")
    if overwrite and runtime.is_main:
        remove_run_outputs(out_dir, RUN_OUTPUTS)


def _drop_lines_after(path: Path, step: int, key: str) -> None:
    """Keep the JSONL lines of ``path`` whose ``key`` is below ``step``: what comes after is redone on resume."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)[key] < step]
        path.write_text("".join(line + "\n" for line in kept))


class RunLog:
    """``log.jsonl`` (one line per step) plus tensorboard; written by the main rank only."""

    def __init__(self, out_dir: Path, runtime: Runtime, resume_step: int):
        self.enabled = runtime.is_main
        self.path = out_dir / "log.jsonl"
        if not self.enabled:
            return
        _drop_lines_after(self.path, resume_step, "step")
        _drop_lines_after(out_dir / "decisions.jsonl", resume_step, "step")  # the decision at the resumed step is retaken
        # an in-loop eval line names the step count *at* its checkpoint, which resuming keeps
        _drop_lines_after(out_dir / "evals.jsonl", resume_step + 1, "step")
        self.file = self.path.open("a")
        self.tensorboard = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "step":
                self.tensorboard.add_scalar(key, value, record["step"])
        for source, value in record["loss_per_source"].items():
            self.tensorboard.add_scalar(f"loss/{source}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tensorboard.close()


def _is_checkpoint_step(done: int, recipe: Recipe, sampler: MixtureSampler) -> bool:
    """Checkpoint after ``done`` steps? At every ``every_tokens`` crossing, each stage end and the last step."""
    if any(done == plan.end_step for plan in sampler.stages):
        return True
    every, per_step = recipe.checkpoint.every_tokens, recipe.batch.tokens_per_step
    return bool(every) and (done * per_step) // every > ((done - 1) * per_step) // every


def train(recipe: Recipe, resume: bool = False, overwrite: bool = False) -> TrainResult:
    runtime = init_runtime(recipe.train.device)
    use_deterministic_kernels(recipe.train.deterministic, runtime.device)
    out_dir = recipe.out_dir
    ckpt_root = out_dir / "checkpoints"
    prepare_run_dir(recipe, resume, overwrite, runtime)
    check_in_loop_tasks(recipe.eval)
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, out_dir / "recipe.resolved.yaml")
        checkpoint.remove_partial(ckpt_root)
        tokenizer_for_recipe(recipe)  # a per-run BPE is trained once, by one process
    barrier(runtime)
    tokenizer = tokenizer_for_recipe(recipe).tokenizer
    scored = set(recipe.eval.heldout.sources or []) if recipe.eval.heldout else set()
    sources = sorted({name for stage in recipe.stages for name in stage.mixture} | rule_targets(recipe) | scored)
    streams, heldout = training_streams(recipe, sources)  # with eval.heldout, each source's end is scored, never trained on
    sampler = MixtureSampler(recipe, streams)
    for source, epochs in sampler.planned_epochs().items():
        if epochs > recipe.data.sources[source].max_epochs:
            _report(f"[yellow]warning:[/] source '{source}' will be repeated {epochs:.1f} epochs, more than "
                    f"data.sources.{source}.max_epochs = {recipe.data.sources[source].max_epochs:g}", runtime)

    config = model_config(recipe, len(tokenizer), tokenizer.convert_tokens_to_ids(recipe.data.eos))
    check_geometry(recipe, config, len(tokenizer), runtime.world)
    base_positions = config.max_position_embeddings  # before any stage grows the model's (see use_stage_context)
    model = build_model(recipe, config).to(runtime.device)
    model.train()
    precision = resolve_precision(recipe.train.precision, runtime.device)
    objective = parallelize(CausalLMLoss(model), runtime, precision,
                            activation_checkpointing=recipe.train.activation_checkpointing, compiled=recipe.train.compile)
    optimizer = make_optimizer(model, recipe, runtime)

    start_step = 0
    if resume:
        meta = checkpoint.load_newest(ckpt_root, model, optimizer, runtime,
                                      warn=lambda line: _report(f"[yellow]warning:[/] {line}", runtime))
        start_step = meta["step"]
        if "schedule" in meta:  # the decisions taken before the checkpoint, replayed as they were
            sampler = MixtureSampler(recipe, streams, Schedule.from_json(meta["schedule"], where=f"{meta['path']}/meta.json"))
        _report(f"resumed from {meta['path']} at step {start_step}", runtime)
    elif recipe.anneal:
        parent = checkpoint.load_parent(recipe.anneal, model, optimizer)
        _report(f"branched from {parent} ({'weights and AdamW moments' if recipe.anneal.optimizer else 'weights'})", runtime)
    mixing = OnlineMixing(recipe, sampler)
    guard = SpikeGuard(recipe.train.spike_guard) if recipe.train.spike_guard else None
    if resume:
        mixing.load_state_dict(meta.get("odm"), start_step)
        if guard:
            guard.load_state_dict(meta.get("spike_guard"))
        _finish_side_work(start_step, model, tokenizer, sampler, heldout, recipe, runtime, base_positions)

    schedule = WSD(recipe.schedule, recipe.optim.lr, sampler.total_steps)
    log = RunLog(out_dir, runtime, start_step)
    autocast = bf16_autocast(precision, runtime)
    precision_name = str(precision).removeprefix("torch.")
    peak = peak_flops(runtime.device, precision) * runtime.world
    n_params = count_parameters(config)
    current_stage: StagePlan | None = None
    last = {"loss": float("nan"), "loss_per_source": {}}
    hf_dir = None
    profiler = StepProfiler(recipe.train.profile, out_dir / "profile", runtime.rank, runtime.device,
                            recipe.batch.tokens_per_step)

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                        console=console, disable=not runtime.is_main)
    with progress:
        bar = progress.add_task("train", total=sampler.total_steps, completed=start_step, loss=float("nan"))
        step = start_step
        while step < sampler.total_steps:  # a while, not a for: the spike guard moves the step back
            if policy := rules_due(recipe, sampler, step):
                _log_decisions(decide(policy, sampler, step, _eval_line(out_dir / "evals.jsonl", step)), recipe, runtime)
            _log_decisions(mixing.before_step(step), recipe, runtime)
            stage = sampler.stage_of_step(step)
            if stage is not current_stage:
                use_stage_context(model, sampler, stage, base_positions)
                current_stage = stage
                progress.update(bar, description=f"train [{stage.name}]")
            profiler.step_begins(step)
            started = time.perf_counter()
            lr = schedule.lr(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            stats = _train_step(objective, sampler, step, stage, recipe, runtime, autocast)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.clip or float("inf"))
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            if guard and (spike := guard.judge(stage.index, stats["loss"], float(grad_norm))):
                step = _rewind(step, spike, stats["loss"], float(grad_norm), guard, model, optimizer, sampler, mixing,
                               recipe, runtime, ckpt_root)
                log.close()
                log, current_stage = RunLog(out_dir, runtime, step), None  # the steps from the checkpoint on are redone
                progress.update(bar, completed=step)
                continue
            if guard:
                _log_decisions(guard.passed(step, stats["loss"]), recipe, runtime)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            _report(profiler.step_ended(step, elapsed), runtime)
            tokens_done = (step + 1) * recipe.batch.tokens_per_step
            tok_s = recipe.batch.tokens_per_step / elapsed
            flops = flops_per_token(model.config, stage.seq_len) * tok_s
            last = {"loss": stats["loss"], "loss_per_source": stats["loss_per_source"]}
            mixing.after_step(stats["loss_per_source"])
            if step % recipe.train.log_every == 0 or step + 1 == sampler.total_steps:
                log.write({
                    "step": step, "stage": stage.name, "tokens": tokens_done, **last, "lr": lr,
                    "lr_phase": schedule.phase(step), "grad_norm": float(grad_norm), "tok_s": tok_s,
                    "flops_s": flops, "mfu": flops / peak if peak else None, "data_crc": stats["data_crc"],
                    "data_s": stats["data_s"],
                    "params": n_params, "precision": precision_name, "device": str(runtime.device),
                })
            progress.update(bar, advance=1, loss=stats["loss"])
            if _is_checkpoint_step(step + 1, recipe, sampler):
                hf_dir = _checkpoint_and_export(step + 1, model, optimizer, tokenizer, sampler, heldout, recipe, runtime,
                                                ckpt_root, loop_state=_loop_state(mixing, guard))
            step += 1
    _report(profiler.close(), runtime)
    log.close()
    return TrainResult(out_dir, sampler.total_steps, last["loss"], last["loss_per_source"], hf_dir)


def _evaluates(recipe: Recipe) -> bool:
    return bool(recipe.eval.tasks) or recipe.eval.heldout is not None


def _report(line: str | None, runtime: Runtime) -> None:
    """One line on the main rank, never folded (paths stay whole in logs and for grep)."""
    if line and runtime.is_main:
        console.print(line, soft_wrap=True, highlight=False)


def to_device(tokens: np.ndarray, device: torch.device) -> torch.Tensor:
    """A micro-batch of token windows on ``device``; to a GPU from pinned memory, so the copy is
    queued behind the running kernels instead of waiting for them."""
    batch = torch.from_numpy(tokens)
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


def forward_backward(objective: CausalLMLoss, batch: torch.Tensor, scale: float, autocast) -> torch.Tensor:
    """One micro-batch of ``seq_len + 1``-token windows: forward with the fused loss, then backward of
    ``scale × Σ token losses``; returns the per-token losses, left on the device (no host sync)."""
    with autocast:
        scaled_loss, token_loss = objective(batch[:, :-1], batch[:, 1:], scale=scale)
    scaled_loss.backward()
    return token_loss


def _train_step(objective: CausalLMLoss, sampler: MixtureSampler, step: int, stage: StagePlan, recipe: Recipe, runtime: Runtime,
                autocast) -> dict:
    """Forward/backward over this rank's micro-batches of the step; returns global loss statistics and
    ``data_s``, this rank's seconds choosing the step's samples and stacking their windows (the data path's
    whole cost inside a step, logged so its share is measured on every run, not estimated)."""
    micro = recipe.batch.micro_batch
    data_started = time.perf_counter()
    samples = sampler.step_samples(step)
    data_s = time.perf_counter() - data_started
    per_pass = micro * runtime.world
    accum = len(samples) // per_pass
    step_tokens = len(samples) * stage.seq_len
    sources = sampler.segment_of_step(step).sources
    source_index = {name: i for i, name in enumerate(sources)}
    # [loss sum, token count] per source, plus the data fingerprint; reduced over ranks once per step
    totals = torch.zeros(len(sources) * 2 + 1, dtype=torch.float64)
    mine_all, sample_losses = [], []
    for a in range(accum):
        data_started = time.perf_counter()
        mine = samples[a * per_pass + runtime.rank * micro: a * per_pass + (runtime.rank + 1) * micro]
        arrays = [sampler.tokens(s) for s in mine]
        batch = np.stack(arrays)
        data_s += time.perf_counter() - data_started
        if runtime.distributed:
            objective.set_requires_gradient_sync(a == accum - 1)
        # Each rank's share of the global mean; FSDP averages gradients over ranks, hence × world.
        token_loss = forward_backward(objective, to_device(batch, runtime.device),
                                      runtime.world / step_tokens, autocast)
        sample_losses.append(token_loss.view(len(mine), -1).sum(dim=1))  # stays on the device: no sync
        mine_all += mine
        totals[-1] += sum(zlib.crc32(array.tobytes()) for array in arrays)
    for sample, loss in zip(mine_all, torch.cat(sample_losses).double().cpu()):  # one device sync per step
        i = source_index[sample.source]
        totals[2 * i] += loss
        totals[2 * i + 1] += stage.seq_len
    all_reduce_sum(totals, runtime)
    sums, counts = totals[:-1:2], totals[1:-1:2]
    return {
        "loss": float(sums.sum() / counts.sum()),
        "loss_per_source": {name: float(sums[i] / counts[i]) for name, i in source_index.items() if counts[i] > 0},
        "data_crc": int(totals[-1]) % (1 << 32),
        "data_s": data_s,
    }


def _checkpoint_and_export(next_step: int, model, optimizer, tokenizer, sampler: MixtureSampler, heldout: dict,
                           recipe: Recipe, runtime: Runtime, ckpt_root: Path, loop_state: dict) -> Path | None:
    """``loop_state``: the JSON state of the loop's policies (the ODM bandit), resumed from the checkpoint's meta."""
    meta = _checkpoint_meta(next_step, sampler, recipe, runtime, loop_state)
    checkpoint.save(ckpt_root, next_step, model, optimizer, meta, recipe.checkpoint.keep, runtime)
    hf_dir = checkpoint.export_hf(model, tokenizer, recipe.out_dir / "hf" / f"step-{next_step}", runtime)
    if runtime.is_main:
        exports = sorted((recipe.out_dir / "hf").glob("step-*"), key=lambda p: int(p.name[5:]))
        for old in exports[: -recipe.checkpoint.keep]:
            shutil.rmtree(old, ignore_errors=True)
        if _evaluates(recipe):
            _evaluate_export(hf_dir, tokenizer, heldout, recipe, meta, next_step, runtime)
    barrier(runtime)
    return hf_dir


def _log_decisions(records: list[dict], recipe: Recipe, runtime: Runtime) -> None:
    """Append mixture decisions to ``decisions.jsonl`` and say the ones that changed the shares.

    Rules read the ``evals.jsonl`` line of the checkpoint at their step and the bandit reads losses
    reduced over ranks, so every rank takes the same decision; only the main rank writes it."""
    if not runtime.is_main or not records:
        return
    with (recipe.out_dir / "decisions.jsonl").open("a") as f:
        for record in records:
            f.write(json.dumps({"tokens": record["step"] * recipe.batch.tokens_per_step} | record) + "\n")
    for record in records:
        if "shares_after" in record:
            shares = ", ".join(f"{s} {w:.1%}" for s, w in record["shares_after"].items())
            why = f"{record['rule']} ({record['when']})" if record["policy"] == "rules" else f"odm round {record['round']}"
            _report(f"mixture @ step {record['step']}: {why} → {shares}", runtime)


def _finish_side_work(step: int, model, tokenizer, sampler: MixtureSampler, heldout: dict, recipe: Recipe,
                      runtime: Runtime, base_positions: int) -> None:
    """Export and evaluate the checkpoint a run resumes from, where the run died before doing so."""
    hf_dir = recipe.out_dir / "hf" / f"step-{step}"
    if not hf_dir.exists():
        use_stage_context(model, sampler, sampler.stage_of_step(step - 1), base_positions)  # as it was at the checkpoint
        checkpoint.export_hf(model, tokenizer, hf_dir, runtime)
    if _evaluates(recipe) and runtime.is_main and _eval_line(recipe.out_dir / "evals.jsonl", step) is None:
        meta = {"tokens": step * recipe.batch.tokens_per_step, "stage": sampler.stage_of_step(step - 1).name}
        _evaluate_export(hf_dir, tokenizer, heldout, recipe, meta, step, runtime)
    barrier(runtime)


def _eval_line(path: Path, step: int) -> dict | None:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
    return next((line for line in reversed(lines) if line["step"] == step), None)


def _evaluate_export(hf_dir: Path, tokenizer, heldout: dict, recipe: Recipe, meta: dict, step: int,
                     runtime: Runtime) -> None:
    """In-loop evaluation of the just-published export, on the main rank.

    Scoring the export rather than the live (possibly sharded) model keeps training state and RNG
    untouched by construction and checks the export on every checkpoint; the cost is one load.
    """
    from smollab.eval.evaluate import headline, run_in_loop

    with checkpoint.quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).to(runtime.device)
    # held-out losses at batch.seq_len in every stage, so a rule compares like with like across stages
    bf16 = resolve_precision(recipe.train.precision, runtime.device) == torch.bfloat16
    line = run_in_loop(model, tokenizer, recipe.eval, tokens=meta["tokens"], stage=meta["stage"], step=step,
                       out_path=recipe.out_dir / "evals.jsonl", heldout=heldout, heldout_seq_len=recipe.batch.seq_len,
                       heldout_autocast=torch.autocast(runtime.device.type, dtype=torch.bfloat16) if bf16 else None)
    scores = {task: m[headline(m)] for task, m in line["metrics"].items()}
    scores |= {f"heldout.{source}": loss for source, loss in line.get("heldout", {}).items()}
    _report(f"eval @ step {step}: " + ", ".join(f"{name} {v:.3f}" for name, v in scores.items()), runtime)


def _checkpoint_meta(next_step: int, sampler: MixtureSampler, recipe: Recipe, runtime: Runtime, loop_state: dict) -> dict:
    """What a checkpoint records beside the tensors: position, schedule, consumption and the loop's policies."""
    stage = sampler.stage_of_step(next_step - 1)
    return {"tokens": next_step * recipe.batch.tokens_per_step, "stage": stage.name, "world": runtime.world,
            "consumed": sampler.consumed(next_step), "schedule": sampler.schedule.to_json(), **loop_state}


def _loop_state(mixing: OnlineMixing, guard: SpikeGuard | None) -> dict:
    """The JSON state of the loop's policies, saved in each checkpoint's meta and resumed from it."""
    return {"odm": mixing.state_dict(), "spike_guard": guard.state_dict() if guard else None}


def _rewind(step: int, reason: str, loss: float, grad_norm: float, guard: SpikeGuard, model, optimizer,
            sampler: MixtureSampler, mixing: OnlineMixing, recipe: Recipe, runtime: Runtime, ckpt_root: Path) -> int:
    """Undo the spike at ``step``: reload the newest checkpoint, skip ``step``'s samples, and return the step to go on from.

    The checkpoint is written again with the skip in its schedule (same tensors, same RNG), so a run
    killed before the next checkpoint resumes with the same skip. Rewriting costs one checkpoint write
    per rewind; patching its meta.json in place would be cheaper but would make a published
    checkpoint mutable outside ``checkpoint.save``. The steps from the checkpoint to ``step`` are
    replayed as they were (same samples, same LR, same policy decisions), and ``step`` onwards draws
    the samples that came next: the step count and stage boundaries stay, the stage reads one step
    further into its sources.
    """
    optimizer.zero_grad(set_to_none=True)
    event = {"step": step, "stage": sampler.stage_of_step(step).name, "policy": "spike_guard", "reason": reason,
             "loss": loss if math.isfinite(loss) else None, "grad_norm": grad_norm if math.isfinite(grad_norm) else None,
             "skipped": skipped_windows(sampler.step_samples(step))}
    if not checkpoint.list_checkpoints(ckpt_root):
        raise SmollabError(f"train.spike_guard: step {step} spiked ({reason}) before the first checkpoint, so there is "
                           "nothing to rewind to; lower optim.lr or raise schedule.warmup_steps, or checkpoint sooner "
                           "(checkpoint.every_tokens)")
    meta = checkpoint.load_newest(ckpt_root, model, optimizer, runtime,
                                  warn=lambda line: _report(f"[yellow]warning:[/] {line}", runtime))
    guard.spiked(event | {"rewound_to": meta["step"]})
    if guard.exhausted:
        _log_decisions(guard.pending, recipe, runtime)
        raise SmollabError(give_up_message(guard.pending, guard.config.max_rewinds))
    where = f"{meta['path']}/meta.json"
    stored = Schedule.from_json(meta["schedule"], where=where) if "schedule" in meta else Schedule.static(sampler.stages)
    sampler.use_schedule(stored.with_skip(step))
    mixing.load_state_dict(meta.get("odm"), meta["step"])
    guard.rewound(meta.get("spike_guard"))
    checkpoint.save(ckpt_root, meta["step"], model, optimizer,
                    _checkpoint_meta(meta["step"], sampler, recipe, runtime, _loop_state(mixing, guard)),
                    recipe.checkpoint.keep, runtime)
    _report(f"[yellow]spike @ step {step}:[/] {reason}; rewound to {meta['path']}, step {step}'s samples skipped "
            f"(rewind {guard.rewinds} in a row, at most {guard.config.max_rewinds})", runtime)
    return meta["step"]
