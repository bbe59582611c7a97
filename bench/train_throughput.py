"""Training throughput: smollab's loop vs a plain Hugging Face ``Trainer``, same model, data, threads.

What it measures: steady-state tokens/s and achieved GFLOP/s of both loops on the demo model and
bundled demo data (median over steps, then median over ``--runs`` alternating runs, each in a fresh
process), the fraction of this machine's measured bf16 matmul ceiling, and — separately — that the
two loops compute the same thing: fed the same batches from the same initial weights in fp32, their
per-step losses over the first 20 steps agree within 1e-3 relative. Last, one profiled run of each
loop (``train.profile``'s ``StepProfiler`` for both) splits two steady steps into GEMM, attention,
compiled-kernel and other time; smollab's GEMM + attention time per token, work no loop can skip,
bounds the ratio any smollab loop could reach against the Trainer's measured rate.
Both loops run in the precision this machine computes fastest: bf16 autocast where the CPU has
native bf16 (AVX512-BF16 / AMX), else fp32 (on an AVX2-only CPU bf16 matmuls are emulated and
~300× slower), and the ceiling is the best 2048² matmul rate in that dtype.
The peer runs in its best documented configuration for this case: ``bf16=True`` where native,
``torch_compile=True``, ``optim=adamw_torch_fused``, no dataloader workers (data is in memory),
sequential sampling, the same micro-batch and gradient accumulation. smollab runs with
``train.precision=auto train.compile=true`` and its default ``train.deterministic=auto`` (on, on a
CPU); ``--variant`` adds interleaved smollab runs with other overrides, e.g. to show what that costs.

    .venv/bin/python bench/train_throughput.py --runs 3 --steps 8 --skip 3 \
        --variant "nondeterministic train.deterministic=false"
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# One micro-batch geometry for both loops: the demo model, 256-token sequences, 16 per micro-batch.
GEOMETRY = ["batch.seq_len=256", "batch.tokens_per_step=16384", "batch.micro_batch=16", "checkpoint.every_tokens=null"]


def bench_stages(steps: int) -> str:
    """The demo's sources in two stages of ``steps`` steps in all (the first half without math), as one
    ``stages=`` override, so the benchmark keeps its shape whatever stages demo.yaml itself has."""
    stable = "{web: 0.40, news: 0.15, edu: 0.25, wiki: 0.10, code: 0.10}"
    decay = "{web: 0.30, news: 0.05, edu: 0.20, wiki: 0.10, code: 0.10, math: 0.25}"
    return (f"stages=[{{name: stable, until_tokens: {steps * 8192}, mixture: {stable}}}, "
            f"{{name: decay, until_tokens: {steps * 16384}, mixture: {decay}}}]")
PROFILED_STEPS = 2


def bench_recipe(work: Path, steps: int, precision: str, compile_: bool, constant_lr: bool,
                 profile_from: int | None = None, extra: list[str] | None = None):
    from smollab.demo import DEMO_RECIPE
    from smollab.recipe import load_recipe

    overrides = [
        f"out={work}", f"data.shards_dir={work / 'shards'}",
        bench_stages(steps),
        f"train.precision={precision}", f"train.compile={str(compile_).lower()}", "train.device=cpu", *GEOMETRY,
    ]
    if constant_lr:
        overrides += ["schedule.warmup_steps=0", "schedule.decay.fraction=0"]
    if profile_from is not None:
        overrides += [f"train.profile.start_step={profile_from}", f"train.profile.steps={PROFILED_STEPS}"]
    return load_recipe(DEMO_RECIPE, overrides + (extra or []))


def prepare(work: Path) -> None:
    """Tokenizer + shards once, shared by every run."""
    from smollab.data.tokenize import tokenize_recipe
    from smollab.tokenizer import tokenizer_for_recipe

    recipe = bench_recipe(work, 4, "fp32", False, False)
    tokenizer_for_recipe(recipe)
    tokenize_recipe(recipe, workers=2)


def run_smollab(work: Path, steps: int, precision: str, compile_: bool, constant_lr: bool,
                profile_from: int | None, extra: list[str]) -> list[dict]:
    from smollab.train.loop import train

    recipe = bench_recipe(work, steps, precision, compile_, constant_lr, profile_from, extra)
    train(recipe, overwrite=True)  # every timed run starts from scratch in the same work directory
    return [json.loads(line) for line in (recipe.out_dir / "log.jsonl").read_text().splitlines()]


def run_trainer(work: Path, steps: int, precision: str, compile_: bool, constant_lr: bool,
                profile_from: int | None) -> list[dict]:
    """The same batches, the same initial weights, through ``transformers.Trainer``.

    With ``profile_from`` the same ``StepProfiler`` as smollab's ``train.profile`` records the
    Trainer's steps, writing into the run directory's ``profile/`` as smollab does.
    """
    import numpy as np
    import torch
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from smollab.data.heldout import training_streams
    from smollab.data.mixture import MixtureSampler
    from smollab.recipe import ProfileWindow
    from smollab.tokenizer import tokenizer_for_recipe
    from smollab.train.loop import build_model, model_config
    from smollab.train.profile import StepProfiler

    recipe = bench_recipe(work, steps, precision, compile_, constant_lr)
    tokenizer = tokenizer_for_recipe(recipe).tokenizer
    # the streams smollab trains on: with eval.heldout, each source's end is held out of training
    streams, _ = training_streams(recipe, sorted({name for stage in recipe.stages for name in stage.mixture}))
    sampler = MixtureSampler(recipe, streams)
    rows = []
    for step in range(sampler.total_steps):
        for sample in sampler.step_samples(step):
            tokens = torch.from_numpy(np.asarray(sampler.tokens(sample)))
            rows.append({"input_ids": tokens[:-1], "labels": tokens[1:], "shift_labels": tokens[1:]})
    model = build_model(recipe, model_config(recipe, len(tokenizer)))
    micro = recipe.batch.micro_batch
    accum = recipe.batch.tokens_per_step // (recipe.batch.seq_len * micro)
    optim = recipe.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=optim.betas, eps=optim.eps,
                                  weight_decay=optim.weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    args = TrainingArguments(
        output_dir=str(work / "trainer"), max_steps=sampler.total_steps, per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum, bf16=precision == "bf16", torch_compile=compile_, use_cpu=True,
        max_grad_norm=optim.clip, logging_steps=1, save_strategy="no", report_to=[], dataloader_num_workers=0,
        remove_unused_columns=False, seed=recipe.train.seed, disable_tqdm=True,
    )
    log: list[dict] = []
    window = ProfileWindow(start_step=profile_from, steps=PROFILED_STEPS) if profile_from is not None else None
    profiler = StepProfiler(window, recipe.out_dir / "profile", 0, torch.device("cpu"), recipe.batch.tokens_per_step)

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            profiler.step_begins(state.global_step)
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            elapsed = time.perf_counter() - self.started
            profiler.step_ended(state.global_step - 1, elapsed)
            log.append({"step": state.global_step - 1, "tok_s": recipe.batch.tokens_per_step / elapsed})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                log[-1]["loss"] = logs["loss"]

    class InOrder(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(rows)

    trainer = InOrder(model=model, args=args, train_dataset=rows, optimizers=(optimizer, schedule), callbacks=[StepClock()])
    trainer.train()
    return log


def steady_tok_s(log: list[dict], skip: int) -> float:
    return statistics.median(r["tok_s"] for r in log[skip:])


def child(args) -> None:
    """One measured run in this (fresh) process; prints one JSON line."""
    work = Path(args.work)
    run_dir = Path(tempfile.mkdtemp(dir=work))
    (run_dir / "shards").symlink_to(work / "shards")
    (run_dir / "tokenizer").symlink_to(work / "tokenizer")
    common = (run_dir, args.steps, args.precision, not args.no_compile, args.constant_lr, args.profile_from)
    log = run_smollab(*common, args.override) if args.child == "smollab" else run_trainer(*common)
    summary = run_dir / "profile" / "summary-rank0.json"
    print(json.dumps({"log": log, "profile": json.loads(summary.read_text()) if summary.exists() else None}))


def spawn(which: str, work: Path, steps: int, precision: str, constant_lr: bool = False,
          profile_from: int | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """One run in a fresh process → ``{"log", "profile"}``; ``constant_lr`` runs are the fp32
    agreement check (eager, constant LR), ``profile_from`` runs profile two steps from there on,
    ``overrides`` are recipe overrides for a smollab variant."""
    cmd = [sys.executable, __file__, "--child", which, "--work", str(work), "--steps", str(steps), "--precision", precision]
    cmd += [f"--override={item}" for item in overrides]
    if constant_lr:
        cmd += ["--constant-lr", "--no-compile"]
    if profile_from is not None:
        cmd += ["--profile-from", str(profile_from)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode:
        raise SystemExit(f"{which} run failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=4, help="warm-up steps excluded (compilation)")
    parser.add_argument("--work", default="/tmp/smollab-bench-train")
    parser.add_argument("--child", choices=["smollab", "trainer"])
    parser.add_argument("--precision", choices=["bf16", "fp32"], help="(child runs)")
    parser.add_argument("--constant-lr", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--profile-from", type=int, help="(child runs) profile two steps from this one")
    parser.add_argument("--override", action="append", default=[], help="(smollab child runs) recipe override")
    parser.add_argument("--variant", action="append", default=[], metavar="'NAME KEY=VALUE ...'",
                        help="also time smollab with these recipe overrides, interleaved with the other runs")
    parser.add_argument("--out", default=str(REPO / "bench" / "train_throughput.json"))
    args = parser.parse_args()
    if args.child:
        return child(args)

    import torch

    from smollab.presets import count_parameters
    from smollab.train.loop import model_config
    from smollab.train.parallel import cpu_peak_flops, flops_per_token, resolve_precision
    from smollab.train.profile import BUCKETS

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prepare(work)
    dtype = resolve_precision("auto", torch.device("cpu"))
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    recipe = bench_recipe(work, args.steps, precision, True, False)
    config = model_config(recipe, 4096)
    flops = flops_per_token(config, recipe.batch.seq_len)

    # 1. same computation: fp32, no compile, constant LR, first 20 steps
    ours = spawn("smollab", work, 20, "fp32", constant_lr=True)["log"]
    peer = spawn("trainer", work, 20, "fp32", constant_lr=True)["log"]
    rel = [abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(ours, peer)]

    # 2. throughput, alternating runs
    loops = {"smollab": ("smollab", ()), "trainer": ("trainer", ())}
    loops.update({name: ("smollab", tuple(items)) for name, *items in map(str.split, args.variant)})
    results = {name: [] for name in loops}
    for _ in range(args.runs):
        for name, (which, overrides) in loops.items():
            log = spawn(which, work, args.steps, precision, overrides=overrides)["log"]
            results[name].append(steady_tok_s(log, args.skip))
    # 3. where each loop's time goes: one profiled run each, two steady steps
    profiles = {which: spawn(which, work, args.skip + PROFILED_STEPS, precision, profile_from=args.skip)["profile"]
                for which in ("smollab", "trainer")}
    ceiling = cpu_peak_flops(dtype, refresh=True)
    report = {
        "date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(), "cpu": os.uname().machine,
        "params": count_parameters(config), "flops_per_token": flops, "precision": precision,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "matmul_ceiling_gflops": ceiling / 1e9,
        "variants": {name: list(overrides) for name, (_, overrides) in loops.items() if overrides},
        "tok_s": {k: statistics.median(v) for k, v in results.items()}, "tok_s_runs": results,
        "loss_agreement": {"steps": len(rel), "max_rel_diff": max(rel), "ours": [r["loss"] for r in ours],
                           "trainer": [r["loss"] for r in peer]},
    }
    report["ratio"] = report["tok_s"]["smollab"] / report["tok_s"]["trainer"]
    report["gflops"] = {k: v * flops / 1e9 for k, v in report["tok_s"].items()}
    report["fraction_of_ceiling"] = {k: v * 1e9 / ceiling for k, v in report["gflops"].items()}
    report["profile"] = profiles
    # The bound: smollab's GEMM and attention kernel time per token is work no loop skips; if all else
    # took no time, smollab's rate would be 1 / that, against the Trainer's measured rate.
    ours_profile = profiles["smollab"]
    kernel_s_per_token = (ours_profile["gemm"] + ours_profile["attention"]) / ours_profile["tokens"]
    report["ratio_bound"] = 1 / (kernel_s_per_token * report["tok_s"]["trainer"])
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"| loop | tok/s per run | tok/s (median) | GFLOP/s | of {precision} ceiling ({ceiling / 1e9:.0f} GFLOP/s) | / Trainer |")
    print("|---|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        print(f"| {name} | {' / '.join(f'{run:,.0f}' for run in runs)} | {report['tok_s'][name]:,.0f} | "
              f"{report['gflops'][name]:.1f} | {report['fraction_of_ceiling'][name]:.1%} | "
              f"{report['tok_s'][name] / report['tok_s']['trainer']:.2f}× |")
    print(f"ratio smollab / Trainer: {report['ratio']:.2f}×; fp32 loss agreement over {len(rel)} steps: "
          f"max relative difference {max(rel):.2e}")
    print(f"\n| loop (profiled steps {args.skip}–{args.skip + PROFILED_STEPS - 1}) | "
          + " | ".join(key.replace("_", " ") for key in (*BUCKETS, "outside_ops")) + " |")
    print("|---|" + "---:|" * (len(BUCKETS) + 1))
    for name, breakdown in profiles.items():
        shares = (f"{breakdown[key] / breakdown['wall_s']:.1%}" for key in (*BUCKETS, "outside_ops"))
        print(f"| {name} | " + " | ".join(shares) + " |")
    print(f"bound: with zero time outside GEMM and attention kernels, smollab / Trainer ≤ {report['ratio_bound']:.2f}×")


if __name__ == "__main__":
    main()
