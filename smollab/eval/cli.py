"""``smollab eval``: score a model on SmolLM2's tasks (or on any lm-eval task) and write results.

A plain function with Typer annotations; ``smollab/cli.py`` registers it. It loads the model once
through ``smollab.pretrained`` (any spec: HF dir, hub id, run dir, .gguf, alias), evaluates,
prints one table and writes the JSON/JSONL files asked for. All the logic lives in
``evaluate.py`` and ``lm_eval_bridge.py``; this file only parses and prints.
"""

import json
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from smollab.console import table_console
from smollab.errors import SmollabError
from smollab.eval.evaluate import evaluate, headline
from smollab.eval.harness import SmolLM

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def eval_command(
    model: Annotated[str, typer.Argument(help="HF dir, hub id, run dir, .gguf file or 'smollm2-135m-instruct'.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks or groups (smollm2-base, smollm2-instruct).")]
    = "smollm2-base",
    limit: Annotated[int | None, typer.Option(help="First N rows of each task, in file order.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded random subset of N rows per task instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for --sample.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the results JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Contexts (or prompts) per forward pass.")] = 8,
    chat_template: Annotated[bool, typer.Option("--chat-template", help="Wrap prompts as a user turn.")] = False,
    log_samples: Annotated[Path | None, typer.Option(help="Write one JSON line per item here.")] = None,
    harness: Annotated[str, typer.Option(help="'smollab' (SmolLM2's formulations) or 'lm-eval'.")] = "smollab",
    include_path: Annotated[Path | None, typer.Option(help="Extra lm-eval task YAML folder.")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto.")] = "auto",
) -> None:
    """Evaluate MODEL. Example: smollab eval smollm2-135m-instruct --tasks hellaswag,arc_easy --limit 500"""
    if limit is not None and sample is not None:
        raise SmollabError("--limit and --sample both choose rows; give only one of them.")
    if dtype not in DTYPES:
        raise SmollabError(f"--dtype {dtype} is not supported; use one of {', '.join(DTYPES)}.")
    if harness not in ("smollab", "lm-eval"):
        raise SmollabError(f"--harness {harness} is unknown; use 'smollab' or 'lm-eval'.")
    lm = SmolLM.load(model, dtype=DTYPES[dtype], batch_size=batch_size, chat_template=chat_template)
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        lm.model.to("cuda")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    console = table_console()
    if harness == "lm-eval":
        from smollab.eval import lm_eval_bridge
        from lm_eval.utils import make_table

        results = lm_eval_bridge.run(lm, names, limit=limit, include_path=include_path,
                                     log_samples=log_samples is not None)
        console.print(make_table(results))
        samples = [s for task_samples in results.pop("samples", {}).values() for s in task_samples]
    else:
        results, samples = evaluate(lm, names, limit=limit, sample=sample, seed=seed)
        console.print(results_table(results))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if log_samples:
        log_samples.parent.mkdir(parents=True, exist_ok=True)
        with log_samples.open("w", encoding="utf-8") as handle:
            for s in samples:
                handle.write(json.dumps(s, default=str) + "\n")


def results_table(results: dict) -> Table:
    table = Table(title=f"{results['model']['name']}  ({results['seconds']:.1f} s)")
    for column in ("task", "metric", "value", "± stderr", "items"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for name, task in results["tasks"].items():
        metric = headline(task["metrics"])
        value, stderr = task["metrics"][metric]["value"], task["metrics"][metric]["stderr"]
        table.add_row(name, metric, f"{100 * value:.1f}", "" if stderr is None else f"{100 * stderr:.1f}",
                      str(task["items"]))
    for name, metrics in results["averages"].items():
        for metric, value in metrics.items():
            table.add_row(f"{name} (average)", metric, f"{100 * value:.1f}", "", "")
    return table
