"""The demo's steps: SmolLM2's loop on bundled data, each step one library call on a bundled recipe.

``STEPS`` is the loop, in order; ``steps.run_steps`` runs it. Each step calls the function its verb
calls, in this process: ``run_curation`` (``smollab curate``), ``tokenize_recipe`` (``smollab
tokenize``), ``train`` (``smollab train``), ``trainer_common.run`` (``smollab sft`` / ``dpo``) and
``eval_command`` (``smollab eval``, so ``OUT/eval/*.json`` are exactly the files ``--out`` writes). The
recipes are the bundled ones, changed only by dotted overrides: the paths that chain the steps
(curated web → the pretraining ``web`` source, pretrained → SFT → DPO), and with ``--quick`` the
tiny limits in ``QUICK``, so the test suite runs the same path as the demo. Each step returns the
numbers ``summary.py`` prints and ``OUT/demo.json`` keeps, read back from what its verb wrote.

Trade-offs: one process runs every step (no second model load or import per step, and a failure is
one line naming the step), so global torch settings made by one step (deterministic kernels on CPU)
carry into the next. The curation is restricted to the curate recipe's web inputs (``WEB_INPUTS``)
by overriding ``curate.inputs`` with those entries of the recipe itself: the curated set becomes the
``web`` source only, and the other pretraining sources stay the bundled samples. ``--quick`` keeps the
real SmolLM2-135M-Instruct as the judge, on 6 documents of 300 characters, rather than a smaller model:
the judge is part of the path under test, no smaller chat model ships with the package, and its load
plus 6 short documents is about a fifth of the quick run.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from smollab.demo import CURATE_RECIPE, DEMO_RECIPE, DPO_RECIPE, SFT_RECIPE
from smollab.demo.steps import Demo, Step, run_steps
from smollab.recipe import Recipe, load_recipe, read_tree

WEB_INPUTS = ("web_c4", "fullpage", "ccnet", "html")
"""The inputs of the curate recipe that the demo curates: its web pages, as text and as raw HTML."""

QUICK = {
    "curate": ["curate.inputs.web_c4.limit=30", "curate.inputs.fullpage.limit=8", "curate.inputs.ccnet.limit=8",
               "curate.inputs.html.limit=3", "curate.annotate.sample=6", "curate.annotate.max_doc_chars=300"],
    "pretrain": ["train.compile=false", "tokenizer.train.vocab_size=1024", "tokenizer.train.max_docs_per_source=40",
                 *(f"data.sources.{name}.limit={limit}" for name, limit in
                   (("news", 20), ("edu", 15), ("wiki", 15), ("code", 40), ("math", 200), ("long_wiki", 15),
                    ("long_docs", 15))),
                 "batch.tokens_per_step=4096", "batch.micro_batch=4", "schedule.warmup_steps=1",
                 "checkpoint.every_tokens=null", "stages.0.until_tokens=8192", "stages.1.until_tokens=16384",
                 "stages.2.until_tokens=24576", "stages.3.until_tokens=32768"],
    "sft": ["data.sources.oasst.limit=8", "data.sources.self_instruct.limit=16", "data.sources.tool_calls.limit=4",
            "data.max_length=256", "data.heldout_fraction=0.2", "train.global_batch=2", "train.eval_every_steps=null"],
    "dpo": ["data.sources.hh_rlhf.limit=16", "data.sources.oasst.limit=8", "data.max_length=256",
            "data.max_prompt_length=128", "data.heldout_fraction=0.2", "train.global_batch=2",
            "train.eval_every_steps=null"],
}
"""``--quick``: overrides of the same recipes that make the whole loop a test (minutes → seconds per step)."""

EVAL_TASKS = "hellaswag,arc_easy,piqa,ifeval,passkey"
EVAL_LIMIT = {"full": 20, "quick": 3}
"""Items per task: 20 covers passkey's 20 cells (256–2048 tokens × 5 depths) once."""


def _set(key: str, value) -> str:
    """A dotted override whose value is written as JSON (valid YAML), so paths and mappings parse as given."""
    return f"{key}={json.dumps(value)}"


def _quick(demo: Demo, step: str) -> list[str]:
    return QUICK[step] if demo.quick else []


def _newest_export(run_dir: Path) -> Path:
    return max((run_dir / "hf").glob("step-*"), key=lambda p: int(p.name.removeprefix("step-")))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def curate(demo: Demo) -> dict:
    """a small web sample: filters, MinHash dedup, decontamination, SmolLM2-135M-Instruct judging, classifier, score"""
    from smollab.curate.cli import load_curate_config
    from smollab.curate.pipeline import run_curation
    from smollab.curate.report import build_report, print_summary

    inputs = read_tree(CURATE_RECIPE, "name and curate")["curate"]["inputs"]
    overrides = [_set("curate.inputs", {name: inputs[name] for name in WEB_INPUTS}), *_quick(demo, "curate")]
    name, config = load_curate_config(CURATE_RECIPE, overrides)
    out = demo.fresh("curate")
    seconds = run_curation(config, out, name, log=lambda line: demo.console.print(line, highlight=False))
    report = build_report(config, out, seconds)
    print_summary(report, demo.console)
    funnel, annotation = report["funnel"], report["annotation"]
    held_out = report["classifier"]["metrics"]["held_out"]
    return {
        "docs": {row["step"]: int(row["docs_out"]) for row in funnel},
        "tokens_read": int(funnel[0]["tokens_in"]), "tokens_kept": int(funnel[-1]["tokens_out"]),
        "duplicates_removed": int(report["dedup"]["duplicates_removed"]),
        "decontaminated": int(report["decontam"]["removed"]),
        "judge": config.annotate.model, "annotated": int(annotation["annotated"]),
        "annotation_histogram": {score: int(n) for score, n in annotation["histogram"].items()},
        "classifier_heldout": {"n": held_out["n"], "mse": held_out["mse"], "binary_f1": held_out["binary_f1"]},
        "outputs": ["curate/curated", "curate/curation_report.json"],
    }


def pretrain_recipe(demo: Demo) -> Recipe:
    """The bundled pretraining recipe in ``OUT/pretrain`` with the curated web set as its ``web`` source."""
    curated = (demo.out / "curate" / "curated").resolve() / "*.jsonl.gz"
    overrides = [_set("out", str(demo.out / "pretrain")), _set("data.sources.web", {"files": [str(curated)]})]
    return load_recipe(DEMO_RECIPE, overrides + _quick(demo, "pretrain"))


def tokenize(demo: Demo) -> dict:
    """the curated web set becomes the pretraining `web` source beside the bundled ones: a BPE, then token shards"""
    from smollab.data.tokenize import tokenize_recipe

    demo.fresh("pretrain")
    recipe = pretrain_recipe(demo)
    overall = tokenize_recipe(recipe, workers=2, console=demo.console)  # trains the recipe's BPE first
    sources = overall["sources"]
    return {
        "vocab_size": overall["vocab_size"], "tokens": overall["tokens"], "documents": overall["documents"],
        "tokens_per_source": {name: source["tokens"] for name, source in sources.items()},
        "web_documents": sources["web"]["documents"],
        "too_short": {name: source["too_short"] for name, source in sources.items() if source["too_short"]},
        "outputs": ["pretrain/tokenizer", "pretrain/shards/summary.json"],
    }


def pretrain(demo: Demo) -> dict:
    """a tiny Llama in 4 stages: a rule on held-out loss rebalances stable-2; then 256 → 1024 tokens, a new RoPE θ"""
    from transformers import AutoConfig

    from smollab.train.loop import train

    recipe = pretrain_recipe(demo)
    result = train(recipe, overwrite=True)
    out = recipe.out_dir
    log, evals = _jsonl(out / "log.jsonl"), _jsonl(out / "evals.jsonl")
    stages = []
    for stage in recipe.stages:
        steps = [line["step"] for line in log if line["stage"] == stage.name]
        stages.append({"name": stage.name, "steps": [min(steps), max(steps) + 1],
                       "seq_len": stage.seq_len or recipe.batch.seq_len, "rope_theta": stage.rope_theta})
    kept = ("step", "stage", "rule", "fired", "metrics", "shares_before", "shares_after", "reason")
    decisions = [{key: record.get(key) for key in kept}
                 for record in _jsonl(out / "decisions.jsonl") if record.get("policy") == "rules"]
    export = _newest_export(out)
    config = AutoConfig.from_pretrained(export)
    return {
        "steps": result.steps, "tokens": log[-1]["tokens"], "parameters": log[-1]["params"],
        "precision": log[-1]["precision"], "stages": stages, "decisions": decisions, "final_loss": result.final_loss,
        "heldout_mean": [{"step": line["step"], "stage": line["stage"],
                          "loss": sum(line["heldout"].values()) / len(line["heldout"])} for line in evals],
        "heldout_last": evals[-1]["heldout"],
        "rope_theta": config.rope_parameters["rope_theta"], "max_position_embeddings": config.max_position_embeddings,
        "outputs": [demo.relative(export), "pretrain/log.jsonl", "pretrain/evals.jsonl"],
    }


def _post_train(demo: Demo, name: str, recipe_path: Path, start: str) -> dict:
    """``name`` (sft or dpo) from the model in ``OUT/start`` into ``OUT/name``, and the counts its run wrote."""
    from smollab.post import dpo as dpo_method, sft as sft_method
    from smollab.post.config import DPORecipe, SFTRecipe, load_post_recipe
    from smollab.post.trainer_common import run

    method, schema = {"sft": (sft_method.METHOD, SFTRecipe), "dpo": (dpo_method.METHOD, DPORecipe)}[name]
    overrides = [_set("model.init_from", str(demo.out / start)), _set("out", str(demo.out / name))]
    recipe = load_post_recipe(recipe_path, overrides + _quick(demo, name), schema)
    export = run(recipe, method, overwrite=True)
    report = json.loads((recipe.out_dir / "data_report.json").read_text())
    evals = _jsonl(recipe.out_dir / "evals.jsonl")  # before training, every eval_every_steps, at the end
    return {
        "steps": int(export.name.removeprefix("step-")), "train": report["train"]["count"],
        "heldout": report["heldout"]["count"], "train_tokens": report["train"]["tokens"],
        "heldout_first": evals[0]["heldout"] if evals else {}, "heldout_last": evals[-1]["heldout"] if evals else {},
        "outputs": [demo.relative(export)],
    }


def sft(demo: Demo) -> dict:
    """SmolLM2's SFT at toy scale: the pretrained model learns the chat template on bundled conversations"""
    return _post_train(demo, "sft", SFT_RECIPE, start="pretrain")


def dpo(demo: Demo) -> dict:
    """SmolLM2's DPO at toy scale: the SFT model, its own reference, prefers the chosen replies of bundled pairs"""
    return _post_train(demo, "dpo", DPO_RECIPE, start="sft")


def _headline(task: dict) -> dict:
    """A task's headline metric in a results file: what ``smollab eval`` prints for it."""
    from smollab.eval.evaluate import headline

    metric = headline(task["metrics"])
    return {"metric": metric, "value": task["metrics"][metric]["value"], "items": task["items"]}


def evaluate(demo: Demo) -> dict:
    """the base and the chat model on multiple-choice tasks, IFEval and passkey (the chat model in its template)"""
    from smollab.eval.cli import eval_command

    out = demo.fresh("eval")
    summary: dict = {"tasks": EVAL_TASKS.split(","), "limit": EVAL_LIMIT[demo.mode], "outputs": []}
    for name, model, chat_template in (("base", "pretrain", False), ("chat", "dpo", True)):
        path = out / f"{name}.json"
        eval_command(str(demo.out / model), tasks=EVAL_TASKS, limit=EVAL_LIMIT[demo.mode], out=path,
                     chat_template=chat_template)
        results = json.loads(path.read_text())
        summary[name] = {task: _headline(r) for task, r in results["tasks"].items()}
        summary["outputs"].append(demo.relative(path))
    return summary


def report(demo: Demo) -> dict:
    """one page of the whole loop: report.html (plots embedded) and report.md, read from the steps' directories"""
    from smollab.report.build import write_report

    written = write_report(demo.out)
    return {"sections": written["sections"], "outputs": [demo.relative(written["html"]), demo.relative(written["md"])]}


STEPS: list[Step] = [
    ("curate", curate),
    ("tokenize", tokenize),
    ("pretrain", pretrain),
    ("sft", sft),
    ("dpo", dpo),
    ("eval", evaluate),
    ("report", report),
]
"""The loop, in order; a step is ``(name, function(Demo) -> summary)`` (see ``steps.py``)."""


def run_demo(out: Path, quick: bool = False, restart: bool = False, console: Console | None = None) -> list[dict]:
    """Run or resume the demo in ``out``; returns ``OUT/demo.json``'s entries."""
    return run_steps(STEPS, Demo(Path(out), quick, console or Console(stderr=True)), restart=restart)
