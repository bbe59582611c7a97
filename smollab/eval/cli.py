"""``smollab eval``: score a model on SmolLM2's tasks (or on any lm-eval task) and write results.

A plain function with Typer annotations; ``smollab/cli.py`` registers it. Everything a user can
get wrong (counts, task names, device, whether generated code can be isolated) is checked before
the model loads, which can take minutes. It then loads the model once through ``smollab.pretrained``
(any spec: HF dir, hub id, run dir, .gguf, alias), evaluates, prints which checkpoint was scored on
which device and one table, and writes the JSON/JSONL files asked for. All the logic lives in
``evaluate.py`` and ``lm_eval_bridge.py``; this file only parses and prints (and, when passkey ran,
draws its heat map next to ``--out``). ``--judge-url`` (else ``$SMOLLAB_JUDGE_URL``) names the server that
grades mt_bench; its judgements are cached next to ``--out`` (else in the user cache).
"""

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from smollab import pretrained
from smollab.console import table_console
from smollab.devices import resolve_device
from smollab.errors import SmollabError
from smollab.eval.evaluate import code_isolation, evaluate, headline
from smollab.eval.harness import SmolLM
from smollab.eval.tasks import TASKS, expand
from smollab.eval.tasks.mt_bench import JUDGE_URL_ENV, configured_judge
from smollab.recipe import JudgeConfig


def eval_command(
    model: Annotated[str, typer.Argument(help="HF dir, hub id, run dir, .gguf file or 'smollm2-135m-instruct'.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks or groups (smollm2-base, smollm2-instruct, "
                                            "instruct).")] = "smollm2-base",
    limit: Annotated[int | None, typer.Option(help="First N rows of each task, in file order.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded random subset of N rows per task instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for --sample.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the results JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Contexts (or prompts) per forward pass.")] = 8,
    max_length: Annotated[int, typer.Option(help="Most tokens per request (context + continuation), capped at "
                                                 "the model's positions; passkey skips longer lengths.")] = 2048,
    chat_template: Annotated[bool, typer.Option("--chat-template", help="Wrap prompts as a user turn.")] = False,
    log_samples: Annotated[Path | None, typer.Option(help="Write one JSON line per item here.")] = None,
    harness: Annotated[str, typer.Option(help="'smollab' (SmolLM2's formulations) or 'lm-eval'.")] = "smollab",
    include_path: Annotated[Path | None, typer.Option(help="Extra lm-eval task YAML folder.")] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    allow_unisolated_code: Annotated[bool, typer.Option(
        "--allow-unisolated-code", help="Run generated code (humaneval) even where the sandbox cannot cut it off "
        "from the network.")] = False,
    judge_url: Annotated[str | None, typer.Option(help="OpenAI-compatible /v1 root of the server grading mt_bench "
                                                       "(default: $SMOLLAB_JUDGE_URL; none: mt_bench is skipped).")]
    = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model name the server expects (default: "
                                                         f"{JudgeConfig.model_fields['model'].default}, FastChat's).")]
    = None,
    judge_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the judge's API key.")]
    = None,
) -> None:
    """Evaluate MODEL. Example: smollab eval smollm2-135m-instruct --tasks hellaswag,arc_easy --limit 500"""
    names = _check_options(tasks, limit=limit, sample=sample, batch_size=batch_size, max_length=max_length,
                           dtype=dtype, harness=harness)
    target = resolve_device(device, "--device")
    judge = _judge(judge_url, judge_model, judge_key_env)
    if harness == "smollab":
        code_isolation(expand(names), allow_unisolated_code)
    source = pretrained.resolve(model)
    weights, tokenizer = pretrained.load(source, dtype=pretrained.DTYPES[dtype])
    lm = SmolLM(weights.eval().to(target), tokenizer, batch_size=batch_size, max_length=max_length,
                chat_template=chat_template, name=model)
    scored = {"name": model, "source": source, "step": pretrained.export_step(source), "device": str(lm.device)}
    console = table_console()
    if harness == "lm-eval":
        from smollab.eval import lm_eval_bridge
        from lm_eval.utils import make_table

        results = lm_eval_bridge.run(lm, names, limit=limit, include_path=include_path,
                                     log_samples=log_samples is not None)
        results["smollab_model"] = scored
        console.print(model_header(scored), highlight=False, soft_wrap=True)
        console.print(make_table(results))
        samples = [s for task_samples in results.pop("samples", {}).values() for s in task_samples]
    else:
        results, samples = evaluate(lm, names, limit=limit, sample=sample, seed=seed,
                                    allow_unisolated_code=allow_unisolated_code, judge=judge,
                                    out_dir=out.parent if out else None)
        results["model"].update(scored)
        console.print(f"{model_header(scored)}  ({results['seconds']:.1f} s)", highlight=False, soft_wrap=True)
        console.print(results_table(results))
        for name, task in results["tasks"].items():
            if task.get("skipped_lengths"):
                console.print(f"{name}: skipped lengths {', '.join(map(str, task['skipped_lengths']))} (above the "
                              f"max_length of {lm.max_length} tokens)", highlight=False, soft_wrap=True)
            if task["metrics"].get("unparseable", {}).get("value"):
                console.print(f"{name}: {task['metrics']['unparseable']['value']} judgement(s) gave no [[rating]] and "
                              "are left out of the scores", highlight=False, soft_wrap=True, markup=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        if harness == "smollab" and "passkey" in results["tasks"]:
            from smollab.eval.plots import passkey_heatmap  # matplotlib loads only when a heat map is drawn

            cells = {m: v["value"] for m, v in results["tasks"]["passkey"]["metrics"].items()}
            passkey_heatmap(cells, out.parent / "passkey_heatmap.png", f"passkey retrieval: {model}")
    if log_samples:
        log_samples.parent.mkdir(parents=True, exist_ok=True)
        with log_samples.open("w", encoding="utf-8") as handle:
            for s in samples:
                handle.write(json.dumps(s, default=str) + "\n")


def _check_options(tasks: str, *, limit: int | None, sample: int | None, batch_size: int, max_length: int,
                   dtype: str, harness: str) -> list[str]:
    """The task names, once every option has been checked; each mistake is one line naming its option."""
    if limit is not None and sample is not None:
        raise SmollabError("--limit and --sample both choose rows; give only one of them.")
    counts = (("--limit", limit, "rows per task; leave it out to evaluate every row"),
              ("--sample", sample, "rows per task; leave it out to evaluate every row"),
              ("--batch-size", batch_size, "contexts per forward pass"),
              ("--max-length", max_length, "tokens per request"))
    for option, value, meaning in counts:
        if value is not None and value < 1:
            raise SmollabError(f"{option} {value}: must be at least 1 ({meaning}).")
    if dtype not in pretrained.DTYPES:
        raise SmollabError(f"--dtype {dtype} is not supported; use one of {', '.join(pretrained.DTYPES)}.")
    if harness not in ("smollab", "lm-eval"):
        raise SmollabError(f"--harness {harness} is unknown; use 'smollab' or 'lm-eval'.")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        raise SmollabError("--tasks names no task; give at least one task or group, e.g. --tasks smollm2-base.")
    return names


def _judge(url: str | None, model: str | None, key_env: str | None) -> JudgeConfig | None:
    """The mt_bench judge from --judge-url (else $SMOLLAB_JUDGE_URL), --judge-model and --judge-key-env."""
    judge = configured_judge(JudgeConfig(base_url=url) if url else None)
    if judge is None:
        if model or key_env:
            raise SmollabError("--judge-model/--judge-key-env configure a judge without an endpoint; pass --judge-url "
                               f"URL (or export {JUDGE_URL_ENV}).")
        return None
    judge = judge.model_copy(update={k: v for k, v in (("model", model), ("api_key_env", key_env)) if v})
    if judge.api_key_env and not os.environ.get(judge.api_key_env):
        raise SmollabError(f"--judge-key-env {judge.api_key_env}: ${judge.api_key_env} is not set; export the judge's "
                           "API key.")
    return judge


def model_header(scored: dict) -> str:
    """MODEL as given, the checkpoint it resolved to when that differs (a run directory's newest
    hf/step-N, with the step), and the device it ran on."""
    text = scored["name"]
    if scored["source"] != scored["name"]:
        text += f" -> {scored['source']}"
    if scored["step"] is not None:
        text += f" (step {scored['step']})"
    return f"{text} on {scored['device']}"


def results_table(results: dict) -> Table:
    table = Table()
    for column in ("task", "metric", "value", "± stderr", "items"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for name, task in results["tasks"].items():
        metric = headline(task["metrics"])
        value, stderr = task["metrics"][metric]["value"], task["metrics"][metric]["stderr"]
        scale, digits = (100, 1) if TASKS[name].percent else (1, 2)  # MT-Bench rates 1-10, not a fraction
        table.add_row(name, metric, f"{scale * value:.{digits}f}",
                      "" if stderr is None else f"{scale * stderr:.{digits}f}", str(task["items"]))
    for name, metrics in results["averages"].items():
        for metric, value in metrics.items():
            table.add_row(f"{name} (average)", metric, f"{100 * value:.1f}", "", "")
    return table
