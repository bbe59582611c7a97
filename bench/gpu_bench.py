"""GPU training throughput of smollab's own step: SmolLM2-135M and -360M at 2,048 tokens per sequence.

What it measures, per model × {eager, torch.compile} × activation checkpointing {off, on}: tokens/s
per GPU, MFU (``flops_per_token``: 6·N + attention, over the datasheet dense bf16 peak of
``peak_flops``), peak memory (``torch.cuda.max_memory_allocated`` over the timed steps) and the largest
micro-batch that fits (doubling from 1 until CUDA runs out of memory, up to 512 sequences = SmolLM2's
whole 1M-token step; searched eagerly, once with checkpointing off and once on). The step is the
loop's: ``build_model``, ``parallelize`` (checkpointing, FSDP2 with its bf16 policy under torchrun,
compile), ``forward_backward`` with the fused LM-head loss, gradient clipping and the loop's fused
AdamW, one micro-batch per optimizer step. Batches are synthetic (uniform random token ids, copied in
from pinned memory as the loop does): throughput does not depend on what the tokens say. Every row
of a model is timed at the largest micro-batch that fits without checkpointing, so the rows compare
like with like; the peer is the issue's goal, 360M ≥ 45 % MFU and 135M ≥ 35 % (the ``goal`` column).
Compiled rows start with a compile warm-up of a minute or more, shown
in its own column; a row that would end after ``--budget-s`` (440 s; judged by the last row of its
mode) is skipped and says so.

    bash bench/gpu.sh                          # one GPU, < 8 min on an H100/H200; bench/gpu_results.md
    bash bench/gpu.sh --preset tiny --cpu      # the same code path on a CPU (CI smoke test)

With several GPUs, a second pass under ``torchrun`` times the same rows on all of them (FSDP2 with its
bf16 policy; ``--fsdp-pass``) at the micro-batches the one-GPU pass found: sharding only lowers memory
per GPU, so no search and no retry (an out-of-memory on one rank would leave the others waiting in a
collective; as an error, torchrun stops them all).
"""

import argparse
import contextlib
import gc
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOALS = {"smollm2-135m": 0.35, "smollm2-360m": 0.45}  # MFU, from the issue
MODES = ("eager", "compiled")


def bench_recipe(args, preset: str, mode: str, checkpointing: bool):
    """One configuration as a recipe: the schema's defaults (SmolLM2's AdamW), ``train.*`` as benchmarked.

    Its batch section only has to validate: ``Trainer.step`` takes the micro-batch size."""
    from smollab.recipe import validate_tree

    return validate_tree({
        "name": "gpu-bench", "model": {"preset": preset},
        "data": {"sources": {"synthetic": {"bundled": "web_c4_samples"}}},  # never read: the batches are synthetic
        "stages": [{"name": "bench", "until_tokens": args.seq_len, "mixture": {"synthetic": 1.0}}],
        "batch": {"seq_len": args.seq_len, "tokens_per_step": args.seq_len, "micro_batch": 1},
        "train": {"precision": "auto", "device": args.device, "compile": mode == "compiled",
                  "activation_checkpointing": checkpointing, "deterministic": True if args.deterministic else "auto"},
    })


class Trainer:
    """One configuration built the loop's way; ``step(micro)`` is one optimizer step on a fresh synthetic batch."""

    def __init__(self, recipe, runtime):
        from smollab.presets import build_config
        from smollab.train.loop import build_model, make_optimizer
        from smollab.train.loss import CausalLMLoss
        from smollab.train.parallel import bf16_autocast, parallelize, resolve_precision, use_deterministic_kernels

        use_deterministic_kernels(recipe.train.deterministic, runtime.device)
        self.runtime, self.seq_len = runtime, recipe.batch.seq_len
        self.config = build_config(recipe.model)
        self.precision = resolve_precision(recipe.train.precision, runtime.device)
        self.model = build_model(recipe, self.config).to(runtime.device)
        self.model.train()
        self.objective = parallelize(CausalLMLoss(self.model), runtime, self.precision,
                                     activation_checkpointing=recipe.train.activation_checkpointing,
                                     compiled=recipe.train.compile)
        self.optimizer = make_optimizer(self.model, recipe, runtime)
        self.autocast = bf16_autocast(self.precision, runtime)
        self.clip = recipe.optim.clip or float("inf")
        self.rng = np.random.default_rng(runtime.rank)

    def step(self, micro: int) -> None:
        from smollab.train.loop import forward_backward, to_device

        tokens = self.rng.integers(0, self.config.vocab_size, (micro, self.seq_len + 1))
        # the loop's scale (world / tokens of the step) with one micro-batch per rank and step
        forward_backward(self.objective, to_device(tokens, self.runtime.device), 1 / (micro * self.seq_len),
                         self.autocast)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    """Give back what a configuration held, and forget its compiled graphs (the next model differs)."""
    gc.collect()
    torch.compiler.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def fits(trainer: Trainer, micro: int) -> bool:
    """Whether one step at ``micro`` sequences fits in the device's memory."""
    try:
        trainer.step(micro)
        sync(trainer.runtime.device)
        ok = True
    except torch.OutOfMemoryError:
        ok = False
    trainer.optimizer.zero_grad(set_to_none=True)  # after the except clause, which held the failed step's tensors
    release(trainer.runtime.device)
    return ok


def largest_fitting(args, runtime, preset: str, checkpointing: bool, start: int) -> tuple[int, bool]:
    """The largest power-of-two micro-batch for which an eager step fits, doubling from ``start``
    (known to fit, or 1); and whether the search stopped at ``--max-micro`` rather than out of memory."""
    trainer = Trainer(bench_recipe(args, preset, "eager", checkpointing), runtime)
    micro, fitting = start, 0
    while micro <= args.max_micro and fits(trainer, micro):
        fitting, micro = micro, micro * 2
    del trainer
    release(runtime.device)
    return fitting, micro > args.max_micro


def measure(args, runtime, preset: str, mode: str, checkpointing: bool, micro: int) -> dict:
    """Warm-up steps (compilation, allocator), then ``--steps`` timed steps at ``micro`` sequences."""
    from smollab.train.parallel import flops_per_token, peak_flops

    trainer = Trainer(bench_recipe(args, preset, mode, checkpointing), runtime)
    try:
        started = time.perf_counter()
        for _ in range(args.warmup):
            trainer.step(micro)
        sync(runtime.device)
        warmup_s = time.perf_counter() - started
        if runtime.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(runtime.device)
        started = time.perf_counter()
        for _ in range(args.steps):
            trainer.step(micro)
        sync(runtime.device)
        tok_s = micro * args.seq_len * args.steps / (time.perf_counter() - started)  # this rank's: per GPU
        peak = peak_flops(runtime.device, trainer.precision)
        flops = flops_per_token(trainer.config, args.seq_len) * tok_s
        memory = torch.cuda.max_memory_allocated(runtime.device) if runtime.device.type == "cuda" else None
        return {"micro": micro, "tok_s": tok_s, "mfu": flops / peak if peak else None, "peak_bytes": memory,
                "warmup_s": warmup_s, "precision": str(trainer.precision).removeprefix("torch.")}
    finally:
        trainer.optimizer.zero_grad(set_to_none=True)
        del trainer


def timed(args, runtime, preset: str, mode: str, checkpointing: bool, micro: int) -> dict:
    """``measure`` at ``micro``, halved while it does not fit (a compiled graph may keep other tensors)."""
    while micro >= 1:
        try:
            return measure(args, runtime, preset, mode, checkpointing, micro)
        except torch.OutOfMemoryError:
            pass
        finally:
            release(runtime.device)
        micro //= 2
    return {"skipped": "one sequence does not fit"}


def one_gpu_pass(args, runtime, deadline: float) -> list[dict]:
    """Every configuration, the goals' rows first (checkpointing off) so that a budget cut drops the others.

    Each model is searched once per checkpointing setting and timed at its largest micro-batch without."""
    rows, fitting, took = [], {}, {}
    order = [(preset, mode, ac) for ac in (False, True) for preset in args.preset for mode in args.modes]
    for preset, mode, checkpointing in order:
        row = {"preset": preset, "mode": mode, "checkpointing": checkpointing, "world": runtime.world}
        rows.append(row)
        if time.perf_counter() + took.get(mode, 0.0) > deadline:  # the last row of its mode says how long one takes
            row["skipped"] = "time budget (--budget-s)"
            continue
        started = time.perf_counter()
        if (preset, checkpointing) not in fitting:
            start = fitting[(preset, False)][0] if (preset, False) in fitting else 1  # checkpointing only saves memory
            fitting[(preset, checkpointing)] = largest_fitting(args, runtime, preset, checkpointing, max(start, 1))
        row["largest"], row["capped"] = fitting[(preset, checkpointing)]
        row |= timed(args, runtime, preset, mode, checkpointing, fitting.get((preset, False), (row["largest"],))[0])
        took[mode] = time.perf_counter() - started
    return rows


def fsdp_pass(args, runtime, deadline: float, found: list[dict]) -> list[dict]:
    """The one-GPU rows again on all ranks (FSDP2), at the micro-batch each was timed at."""
    rows, took = [], {}
    for one in found:
        row = {key: one[key] for key in ("preset", "mode", "checkpointing")} | {"world": runtime.world}
        rows.append(row)
        if "micro" not in one:
            row["skipped"] = "not measured on one GPU"
        elif time.perf_counter() + took.get(one["mode"], 0.0) > deadline:
            row["skipped"] = "time budget (--budget-s)"
        else:
            started = time.perf_counter()
            row |= measure(args, runtime, one["preset"], one["mode"], one["checkpointing"], one["micro"])
            release(runtime.device)
            took[one["mode"]] = time.perf_counter() - started
    return rows


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| model | GPUs | mode | act. ckpt | micro-batch | largest fitting | tok/s per GPU | MFU | goal "
             "| peak memory | warm-up |", "|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for row in rows:
        name = f"| {row['preset']} | {row['world']} | {row['mode']} | {'on' if row['checkpointing'] else 'off'} "
        if "skipped" in row:
            lines.append(name + f"| skipped: {row['skipped']} | | | | | | |")
            continue
        largest = f"{row['largest']}{'+' if row['capped'] else ''}" if "largest" in row else "–"
        goal = GOALS.get(row["preset"])
        verdict = "–" if goal is None or row["mfu"] is None else f"≥ {goal:.0%} {'met' if row['mfu'] >= goal else 'missed'}"
        mfu = "–" if row["mfu"] is None else f"{row['mfu']:.1%}"
        memory = "–" if row["peak_bytes"] is None else f"{row['peak_bytes'] / 2**30:.1f} GiB"
        lines.append(name + f"| {row['micro']} | {largest} | {row['tok_s']:,.0f} | {mfu} | {verdict} | {memory} "
                     f"| {row['warmup_s']:.1f} s |")
    return "\n".join(lines) + "\n"


def machine(runtime) -> str:
    if runtime.device.type == "cuda":
        return f"{torch.cuda.get_device_name(runtime.device)}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="comma-separated presets (default smollm2-135m,smollm2-360m; "
                        "tiny with --cpu)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (smoke test: tiny sizes, eager only, "
                        "2 steps per configuration)")
    parser.add_argument("--modes", default=None, help="comma-separated of eager,compiled (default both; eager with --cpu)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default 2048; 128 with --cpu)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration (default 10; 1 with --cpu)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; 1 with --cpu)")
    parser.add_argument("--max-micro", type=int, default=None, help="largest micro-batch tried (default 512; 2 with --cpu)")
    parser.add_argument("--budget-s", type=float, default=440,
                        help="seconds of measuring; a row that would end later (by the last row of its mode) is skipped")
    parser.add_argument("--deterministic", action="store_true", help="train.deterministic=true (its cost on a GPU)")
    parser.add_argument("--fsdp-pass", action="store_true", help="(under torchrun) time the one-GPU rows on all GPUs")
    parser.add_argument("--out", default=str(REPO / "bench" / "gpu_results.md"), help="markdown table (+ .json beside it)")
    args = parser.parse_args()
    cpu = args.cpu
    args.preset = (args.preset or ("tiny" if cpu else "smollm2-135m,smollm2-360m")).split(",")
    args.modes = (args.modes or ("eager" if cpu else "eager,compiled")).split(",")
    if unknown := set(args.modes) - set(MODES):
        raise SystemExit(f"--modes: unknown {', '.join(sorted(unknown))}; use eager and/or compiled")
    for name, gpu, smoke in (("seq_len", 2048, 128), ("steps", 10, 1), ("warmup", 3, 1), ("max_micro", 512, 2)):
        if getattr(args, name) is None:
            setattr(args, name, smoke if cpu else gpu)
    args.device = "cpu" if cpu else "cuda"
    if not cpu and not torch.cuda.is_available():
        print(f"no GPU: torch {torch.__version__} sees no CUDA device; nothing measured "
              "(bash bench/gpu.sh --preset tiny --cpu runs the same code path on the CPU)")
        return
    from smollab.errors import SmollabError
    from smollab.train.parallel import init_runtime

    runtime = init_runtime(args.device)
    out = Path(args.out)
    deadline = time.perf_counter() + args.budget_s
    try:
        if args.fsdp_pass:
            previous = json.loads(out.with_suffix(".json").read_text())
            rows = previous["rows"] + fsdp_pass(args, runtime, deadline, [r for r in previous["rows"] if r["world"] == 1])
        else:
            rows = one_gpu_pass(args, runtime, deadline)
    except SmollabError as err:
        raise SystemExit(str(err)) from None
    if not runtime.is_main:
        return
    precision = next((row["precision"] for row in rows if "precision" in row), "–")
    header = (f"bench/gpu.sh on {machine(runtime)}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}: "
              f"{precision}, seq {args.seq_len}, {args.warmup} warm-up + {args.steps} timed steps, synthetic tokens; "
              f"`+`: the search stopped at --max-micro {args.max_micro}, not at out-of-memory")
    text = table(rows, header)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    print(text, end="")
    if not args.fsdp_pass and runtime.device.type == "cuda" and (gpus := torch.cuda.device_count()) > 1:
        release(runtime.device)
        sys.exit(subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                 str(gpus), __file__, "--fsdp-pass", *sys.argv[1:]]).returncode)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
