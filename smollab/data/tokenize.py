"""Documents → token shards: one datatrove pipeline per recipe source, resumable and fingerprinted.

Each source runs ``reader → DocumentTokenizer`` under ``LocalPipelineExecutor`` into
``<shards_dir>/<source>/`` (``.ds`` + ``.ds.index``, nanotron's format), with the recipe's EOS after
every document and no shuffling: a task per input file, so the shards are a pure function of
(inputs, tokenizer) whatever ``--workers`` is, and the mixture sampler owns all randomness. Datatrove's
completion markers (``logs/completions``) make a re-run skip finished tasks. Because skipping trusts
the markers, ``fingerprint.json`` records the tokenizer's sha256, the EOS and the source's inputs; a
re-run that disagrees stops instead of mixing two tokenizations. Trade-off: a source capped by
``limit`` (or streamed from the hub) is one task, so it tokenizes on one core.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.tokens import DocumentTokenizer
from datatrove.utils.logging import logger as datatrove_logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from smollab.console import table_console
from smollab.data.shards import TokenStream
from smollab.data.sources import reader_for, source_files
from smollab.errors import SmollabError
from smollab.recipe import Recipe, SourceConfig, load_recipe
from smollab.tokenizer import RecipeTokenizer, file_sha256, tokenizer_for_recipe


class _FileLoggedExecutor(LocalPipelineExecutor):
    """Tasks log fully to ``logs/logs/task_*.log`` but only errors to the console, which smollab's progress owns.

    ``local_rank`` only selects a task's console log level in datatrove 0.10 (0: INFO, else ERROR); the
    executor's own progress lines duplicate ``logs/stats.json`` and are silenced in every process.
    """

    def run(self):
        datatrove_logger.disable("datatrove.executor.local")
        try:
            return super().run()
        finally:
            datatrove_logger.enable("datatrove.executor.local")

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        datatrove_logger.disable("datatrove.executor.local")  # also inside worker processes
        return super()._run_for_rank(rank, local_rank + 1, node_rank)


def _fingerprint(name: str, config: SourceConfig, tok: RecipeTokenizer, eos: str) -> dict:
    inputs = (
        [{"hf": config.hf, "config": config.hf_config, "split": config.split}]
        if config.hf
        else [{"file": p.name, "bytes": p.stat().st_size} for p in source_files(name, config)]
    )
    return {
        "tokenizer": tok.name,
        "tokenizer_sha256": file_sha256(Path(tok.file)),
        "eos": eos,
        "source": config.model_dump(exclude={"max_epochs"}),
        "inputs": inputs,
    }


def _check_fingerprint(out: Path, name: str, fingerprint: dict) -> None:
    """Refuse to add to shards written with another tokenizer, EOS or input set."""
    path = out / "fingerprint.json"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fingerprint, indent=1))
        return
    before = json.loads(path.read_text())
    if before["tokenizer_sha256"] != fingerprint["tokenizer_sha256"]:
        raise SmollabError(
            f"{out} holds shards from another tokenizer ({before['tokenizer']}, sha256 {before['tokenizer_sha256'][:12]}) "
            f"than the recipe's ({fingerprint['tokenizer']}, {fingerprint['tokenizer_sha256'][:12]}); "
            "delete that directory or set data.shards_dir to a new one"
        )
    changed = [key for key in ("eos", "source", "inputs") if before.get(key) != fingerprint[key]]
    if changed:
        what = {"eos": "data.eos", "source": f"data.sources.{name}", "inputs": f"the files of data.sources.{name}"}
        raise SmollabError(
            f"{out} holds shards made with a different {' and '.join(what[k] for k in changed)}; "
            "delete that directory or set data.shards_dir to a new one"
        )


def _tokenize_source(name: str, config: SourceConfig, out: Path, tok: RecipeTokenizer, eos: str, workers: int) -> dict:
    """Tokenize one source into ``out`` (skipping finished tasks) and write its ``summary.json``."""
    logs = out / "logs"
    tasks = 1 if config.hf or config.limit is not None else len(source_files(name, config))
    pipeline = [
        reader_for(name, config, report_folder=str(logs)),
        DocumentTokenizer(
            output_folder=str(out),
            tokenizer_name_or_path=tok.file,
            eos_token=eos,
            shuffle_documents=False,
            batch_size=1000,
        ),
    ]
    _FileLoggedExecutor(pipeline, tasks=tasks, workers=max(1, min(workers, tasks)), logging_dir=str(logs)).run()
    return _write_source_summary(name, out, tok, eos, tasks)


def _write_source_summary(name: str, out: Path, tok: RecipeTokenizer, eos: str, tasks: int) -> dict:
    stream = TokenStream(out)
    counts: Counter[str] = Counter()
    examples: dict[str, list] = {}
    for report in sorted((out / "logs" / "bad_records").glob("*.json")):
        data = json.loads(report.read_text())
        counts.update(data["counts"])
        for reason, found in data["examples"].items():
            examples.setdefault(reason, []).extend(found)
    summary = {
        "source": name,
        "tokens": stream.num_tokens,
        "documents": stream.num_docs,
        "bad_records": dict(sorted(counts.items())),
        "bad_examples": {reason: found[:3] for reason, found in sorted(examples.items())},
        "tokenizer": tok.name,
        "vocab_size": len(tok.tokenizer),
        "dtype": str(stream.token_dtype),
        "eos": eos,
        "eos_id": tok.tokenizer.convert_tokens_to_ids(eos),
        "tasks": tasks,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def tokenize_recipe(recipe: Recipe, workers: int = 1, console: Console | None = None) -> dict:
    """Tokenize every source of the recipe into ``recipe.shards_dir``; returns (and writes) the overall summary."""
    tok = tokenizer_for_recipe(recipe)
    eos = recipe.data.eos
    if eos not in tok.tokenizer.get_vocab():
        raise SmollabError(f"data.eos: '{eos}' is not a token of tokenizer {tok.name}; use one of {', '.join(tok.tokenizer.all_special_tokens)}")
    shards_dir = recipe.shards_dir
    for name, config in recipe.data.sources.items():  # fail before any work, not after the first sources
        _check_fingerprint(shards_dir / name, name, _fingerprint(name, config, tok, eos))
    sources = {}
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=console is None,
    ) as progress:
        bar = progress.add_task("tokenizing", total=len(recipe.data.sources))
        for name, config in recipe.data.sources.items():
            progress.update(bar, description=f"tokenizing [bold]{name}[/]")
            sources[name] = _tokenize_source(name, config, shards_dir / name, tok, eos, workers)
            progress.advance(bar)
    total_bad: Counter[str] = Counter()
    for summary in sources.values():
        total_bad.update(summary["bad_records"])
    first = next(iter(sources.values()))
    overall = {
        "shards_dir": str(shards_dir),
        "tokenizer": tok.name,
        "vocab_size": first["vocab_size"],
        "dtype": first["dtype"],
        "eos": eos,
        "tokens": sum(s["tokens"] for s in sources.values()),
        "documents": sum(s["documents"] for s in sources.values()),
        "bad_records": dict(sorted(total_bad.items())),
        "sources": {name: {k: s[k] for k in ("tokens", "documents", "bad_records")} for name, s in sources.items()},
    }
    shards_dir.mkdir(parents=True, exist_ok=True)
    (shards_dir / "summary.json").write_text(json.dumps(overall, indent=1))
    if console is not None:
        console.print(summary_table(overall))
    return overall


def summary_table(overall: dict) -> Table:
    table = Table(title=f"token shards in {overall['shards_dir']} ({overall['tokenizer']}, {overall['dtype']})")
    table.add_column("source")
    table.add_column("documents", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("bad records")
    for name, s in overall["sources"].items():
        bad = ", ".join(f"{reason} {n:,}" for reason, n in s["bad_records"].items()) or "-"
        style = "red" if s["documents"] == 0 else None  # every record bad: most likely the wrong text field
        table.add_row(name, f"{s['documents']:,}", f"{s['tokens']:,}", bad, style=style)
    table.add_row("[bold]total", f"[bold]{overall['documents']:,}", f"[bold]{overall['tokens']:,}", "")
    return table


def tokenize(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. data.shards_dir=/tmp/shards")] = None,
    workers: Annotated[int, typer.Option(help="tasks run in parallel; the shards do not depend on it (worker processes take ~10 s to start)")] = os.cpu_count() or 1,
) -> None:
    """Tokenize every source of RECIPE into token shards (datatrove .ds + .index), skipping finished ones.

    Writes <shards_dir>/<source>/ (shards, summary.json with bad records per reason) and <shards_dir>/summary.json.

    Example: smollab tokenize recipes/demo.yaml data.shards_dir=runs/demo/shards --workers 2
    """
    console = table_console(stderr=True)
    loaded = load_recipe(recipe, overrides or [])
    overall = tokenize_recipe(loaded, workers=workers, console=console)
    console.print(f"summary: {Path(overall['shards_dir']) / 'summary.json'}")
