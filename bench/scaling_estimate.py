"""From the demo to SmolLM2-1.7B: parameters, tokens, batch, FLOPs and wall time, computed from the recipes.

Everything about a run comes from its recipe and smollab's own code: the architecture and its exact
parameter count (``presets``), the steps each stage really trains (``plan_stages``: steps ×
``batch.tokens_per_step``), the FLOPs per token at each stage's sequence length (``flops_per_token``,
the 6·N + attention formula the loop logs MFU with) and the micro-batch that divides at a GPU count
(``smollab.launch.fitting_micro_batch``, the check ``smollab launch`` applies). What is measured and
what is assumed is kept apart, and every table row says which:

- measured: the CPU loop's tokens/s and GFLOP/s (``bench/train_throughput.json``), and, once
  ``bash bench/gpu.sh`` has run on a GPU, each preset's best one-GPU MFU (``bench/gpu_results.json``);
- assumed: the MFU where nothing is measured (``--mfu``, 40 %) and the GPU's dense bf16 peak (``--gpu``,
  ``parallel.GPU_PEAK_BF16``: 989 TFLOP/s for H100 SXM); the paper's GPU counts (64, 128, 256 H100s).

The trade-off: a wall time is FLOPs / (GPUs × peak × MFU), so one MFU stands for every GPU count; it
ignores how FSDP2's communication grows with the rank count (which only a multi-node measurement can
settle), and counts no recompute for activation checkpointing (it is work that trains nothing).

    .venv/bin/python bench/scaling_estimate.py                         # markdown on stdout
    .venv/bin/python bench/scaling_estimate.py --update docs/scaling.md  # rewrite the tables between its markers
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smollab.data.mixture import plan_stages  # noqa: E402
from smollab.launch import fitting_micro_batch  # noqa: E402
from smollab.presets import build_config, count_parameters  # noqa: E402
from smollab.recipe import Recipe, load_recipe  # noqa: E402
from smollab.train.parallel import GPU_PEAK_BF16, flops_per_token  # noqa: E402

RECIPES = ("demo", "smollm2-135m", "smollm2-360m", "smollm2-1.7b")
PAPER_GPUS = {"smollm2-135m": 64, "smollm2-360m": 128, "smollm2-1.7b": 256}  # H100s: paper §4.1, model cards
BEGIN, END = "<!-- scaling_estimate.py: begin -->", "<!-- scaling_estimate.py: end -->"
DAY = 86_400


def model_of(recipe: Recipe):
    """The architecture the loop builds: the preset, with the vocabulary of the recipe's tokenizer."""
    vocab = recipe.tokenizer.train.vocab_size if recipe.tokenizer.train else None
    return build_config(recipe.model, vocab)


def describe(name: str) -> dict:
    recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
    config = model_of(recipe)
    per_step = recipe.batch.tokens_per_step
    stages = [{"name": p.name, "tokens": (p.end_step - p.start_step) * per_step, "seq_len": p.seq_len}
              for p in plan_stages(recipe)]
    params = count_parameters(config)
    tokens = sum(s["tokens"] for s in stages)
    return {"name": name, "recipe": recipe, "config": config, "params": params, "stages": stages, "tokens": tokens,
            "steps": tokens // per_step, "flops": sum(s["tokens"] * flops_per_token(config, s["seq_len"]) for s in stages),
            "six_nt": 6 * params * tokens}


def measured_mfu(path: Path, presets: set[str]) -> tuple[dict[str, float], str]:
    """Best one-GPU MFU of each of ``presets`` in bench/gpu.sh's JSON, and its header; nothing if it has not run."""
    if not path.is_file():
        return {}, ""
    result = json.loads(path.read_text())
    best: dict[str, float] = {}
    for row in result["rows"]:
        if row["preset"] in presets and row["world"] == 1 and row.get("mfu") and "skipped" not in row:
            best[row["preset"]] = max(best.get(row["preset"], 0.0), row["mfu"])
    return best, result["header"] if best else ""


def count(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:,.0f}"


def duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    if seconds < 730 * DAY:
        return f"{seconds / DAY:,.1f} days"
    return f"{seconds / (365 * DAY):,.0f} years"


def tables(args) -> str:
    runs = [describe(name) for name in RECIPES]
    peak = GPU_PEAK_BF16[args.gpu]
    mfu_measured, gpu_header = measured_mfu(Path(args.gpu_results), {run["recipe"].model.preset for run in runs[1:]})
    cpu = json.loads(Path(args.cpu_results).read_text())
    lines = [
        "| recipe | parameters | stages (tokens at seq_len) | tokens trained | global batch | training FLOPs "
        "(6·N + attention) | 6·N·T |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    for run in runs:
        batch = run["recipe"].batch
        stages = "<br>".join(f"{s['name']}: {count(s['tokens'])} at {s['seq_len']:,}" for s in run["stages"])
        lines.append(f"| {run['name']} | {run['params']:,} | {stages} | {run['tokens']:,} ({run['steps']:,} steps) "
                     f"| {batch.tokens_per_step:,} tokens = {batch.tokens_per_step // batch.seq_len:,} × "
                     f"{batch.seq_len:,} | {run['flops']:.3g} | {run['six_nt']:.3g} |")
    cpu_flops = cpu["gflops"]["smollab"] * 1e9
    lines += [
        "",
        f"**Measured on a CPU** (`bench/train_throughput.json`, {cpu['date']}, {cpu['threads']} threads, "
        f"{cpu['cpu_capability']}, {cpu['precision']}): the demo model at seq 256 trains at "
        f"{cpu['tok_s']['smollab']:,.0f} tok/s ({cpu['gflops']['smollab']:.1f} GFLOP/s, "
        f"{cpu['fraction_of_ceiling']['smollab']:.1%} of that CPU's matmul ceiling). Estimated at that GFLOP/s "
        "(steady state, no compilation, checkpoints or evaluation; larger matmuls run closer to the ceiling): "
        + "; ".join(f"{run['name']} {duration(run['flops'] / cpu_flops)}" for run in runs) + ".",
        "",
        f"**Estimated on GPUs**: {args.gpu} dense bf16 peak {peak / 1e12:,.1f} TFLOP/s; MFU "
        + (f"measured where the MFU column says so ({gpu_header})" if mfu_measured else
           "assumed, nothing is measured on a GPU yet (`bash bench/gpu.sh` measures it)")
        + f", else {args.mfu:.0%}. tok/s per GPU at seq_len {runs[1]['recipe'].batch.seq_len:,}; the wall time counts "
        "each stage at its own seq_len.",
        "",
        "| recipe | GPUs | MFU | tok/s per GPU | wall time | GPU-hours | batch.micro_batch at this GPU count |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for run in runs[1:]:
        recipe, preset = run["recipe"], run["recipe"].model.preset
        mfu = mfu_measured.get(preset, args.mfu)
        source = "measured" if preset in mfu_measured else "assumed"
        tok_s = peak * mfu / flops_per_token(run["config"], recipe.batch.seq_len)
        for gpus in sorted({1, 8, PAPER_GPUS[run["name"]]}):
            seconds = run["flops"] / (gpus * peak * mfu)
            micro = fitting_micro_batch(recipe, gpus)
            fits = ("none divides: change batch.tokens_per_step or the GPU count" if micro is None else
                    f"{micro} (the recipe's)" if micro == recipe.batch.micro_batch else
                    f"{micro} (the recipe's {recipe.batch.micro_batch} does not divide)")
            paper = " (paper)" if gpus == PAPER_GPUS[run["name"]] else ""
            lines.append(f"| {run['name']} | {gpus:,}{paper} | {mfu:.0%} {source} | {tok_s:,.0f} | {duration(seconds)} "
                         f"| {gpus * seconds / 3600:,.0f} | {fits} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="H100", choices=list(GPU_PEAK_BF16), help="whose dense bf16 peak (default H100)")
    parser.add_argument("--mfu", type=float, default=0.40, help="MFU assumed where none is measured (default 0.40)")
    parser.add_argument("--gpu-results", default=str(REPO / "bench" / "gpu_results.json"),
                        help="bench/gpu.sh's JSON; its best one-GPU MFU per preset replaces the assumption")
    parser.add_argument("--cpu-results", default=str(REPO / "bench" / "train_throughput.json"),
                        help="bench/train_throughput.py's JSON (the measured CPU loop)")
    parser.add_argument("--update", metavar="MARKDOWN", help=f"replace the text between {BEGIN} and {END} in this file")
    args = parser.parse_args()
    text = tables(args)
    if not args.update:
        print(text, end="")
        return
    path = Path(args.update)
    page = path.read_text()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers to put the tables between")
    head, rest = page.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{rest.split(END, 1)[1]}")
    print(f"updated {path}")


if __name__ == "__main__":
    main()
