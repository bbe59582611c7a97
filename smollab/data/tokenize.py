"""Documents → token shards: one datatrove pipeline per recipe source, resumable and fingerprinted.

Each source runs ``reader → DocumentTokenizer`` on the executor of ``data.executor`` (local by default,
Slurm or Ray as for curation) into ``<shards_dir>/<source>/`` (``.ds`` + ``.ds.index``, nanotron's
format), with the recipe's EOS after every document and no shuffling. Task ``r`` writes
``<r:05d>_unshuffled.ds``; the sampler reads a source's shards in rank order. Local files are split
into contiguous blocks of whole files (one task per file by default), so the token stream is the same
for any task count and any ``--workers``; a hub source is split by datatrove (by file, else by row,
strided), so its documents are the same set for any task count and its order is fixed for a given
one. The mixture sampler owns all randomness. Datatrove's completion markers (``logs/completions``)
make a re-run skip finished tasks. Because skipping trusts the markers, ``fingerprint.json`` records
the tokenizer's sha256, the EOS, the source's settings, its task count and its inputs (file names and
sizes), and a re-run keeps only markers that the fingerprint vouches for:
another tokenizer, EOS or source settings stop the run instead of mixing two tokenizations (unless
the directory holds no tokens yet, e.g. after a failed first attempt, which simply starts over); a
changed input file redoes the tasks that read it (a different file list or task count redoes the source), and a
task whose shard fails its size checks (``shards.check_shard``) is redone, so fixing a file or
deleting a damaged shard and re-running repairs exactly that part. Sizes, not content hashes, detect
a changed file: hashing terabytes per run is too slow, and an edit that keeps the size goes unseen.
Trade-off: a source capped by ``limit``, a single input file, or (unless ``tasks`` is set) a hub source is
one task, so it tokenizes on one core: a ``.jsonl.gz`` cannot be split without reading it from the start.
On Slurm the jobs are submitted and the summaries wait for a re-run once they finish. A source that yields no document is an error once every source is tokenized (training would
refuse it anyway), worded by its cause: a missing text field, an ids-only hub release, a filter.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from datatrove.executor import LocalPipelineExecutor
from datatrove.executor.base import PipelineExecutor
from datatrove.io import get_datafolder
from datatrove.pipeline.tokens import DocumentTokenizer
from datatrove.pipeline.tokens.tokenizer import get_output_filename
from datatrove.utils.logging import logger as datatrove_logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from smollab.console import table_console
from smollab.data.length_filter import MinTokensFilter
from smollab.data.shards import TokenStream, check_shard
from smollab.data.sources import HubReader, reader_for, source_files, task_share
from smollab.errors import SmollabError
from smollab.executors import ExecutorConfig, executor_for, tasks_done
from smollab.recipe import Recipe, SourceConfig, TokenizeExecutorConfig, load_recipe
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


def _task_count(name: str, config: SourceConfig, executor: TokenizeExecutorConfig) -> int:
    """How many tasks tokenize a source (see the module docstring)."""
    if config.limit is not None:
        return 1  # datatrove's limit caps each task; one task keeps it a cap on the source
    if config.hf:
        return executor.tasks or 1
    files = len(source_files(name, config))
    return min(executor.tasks or files, files)


def _fingerprint(name: str, config: SourceConfig, tok: RecipeTokenizer, eos: str, tasks: int) -> dict:
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
        "tasks": tasks,
    }


def _changed_settings(name: str, before: dict, now: dict) -> list[str]:
    """The recipe settings (EOS, source fields) that differ, as ``field (old, now new)``.

    A source field the old fingerprint lacks counts as its default, so adding a field to
    ``SourceConfig`` does not invalidate existing shards.
    """
    changed = [f"data.eos ({before['eos']!r}, now {now['eos']!r})"] if before["eos"] != now["eos"] else []
    for key, value in now["source"].items():
        old = before["source"].get(key, SourceConfig.model_fields[key].default)
        if old != value:
            changed.append(f"data.sources.{name}.{key} ({old!r}, now {value!r})")
    return changed


def _holds_tokens(out: Path) -> bool:
    return any(f.stat().st_size for f in out.glob("*.ds"))


def _refuse_mixing(out: Path, name: str, fingerprint: dict) -> None:
    """Refuse to add to shards that hold tokens made with another tokenizer, EOS or source settings."""
    path = out / "fingerprint.json"
    if not path.exists() or not _holds_tokens(out):
        return
    before = json.loads(path.read_text())
    if before["tokenizer_sha256"] != fingerprint["tokenizer_sha256"]:
        raise SmollabError(
            f"{out} holds shards from another tokenizer ({before['tokenizer']}, sha256 {before['tokenizer_sha256'][:12]}) "
            f"than the recipe's ({fingerprint['tokenizer']}, {fingerprint['tokenizer_sha256'][:12]}); "
            "delete that directory or set data.shards_dir to a new one"
        )
    if changed := _changed_settings(name, before, fingerprint):
        raise SmollabError(
            f"{out} holds shards made with a different {' and '.join(changed)}; "
            "delete that directory or set data.shards_dir to a new one"
        )


def _completion(out: Path, rank: int) -> Path:
    return out / "logs" / "completions" / f"{rank:05d}"


def _keep_vouched_tasks(name: str, out: Path, fingerprint: dict) -> None:
    """Drop the completion markers the new fingerprint does not vouch for, then record it (see the module docstring)."""
    path = out / "fingerprint.json"
    tasks = fingerprint["tasks"]
    if path.exists():
        before = json.loads(path.read_text())
        same_settings = (
            before["tokenizer_sha256"] == fingerprint["tokenizer_sha256"] and not _changed_settings(name, before, fingerprint)
        )
        old, new = before["inputs"], fingerprint["inputs"]
        # Other settings reach here only with no tokens written (_refuse_mixing); another file list or
        # task count shifts which task reads which file, so every task's inputs changed. A fingerprint
        # older than the `tasks` entry was written with today's default count.
        if not same_settings or [i.get("file") for i in old] != [i.get("file") for i in new] or before.get("tasks", tasks) != tasks:
            shutil.rmtree(out)
        else:
            changed = [was != now for was, now in zip(old, new)]
            for rank in range(tasks):
                if any(task_share(changed, rank, tasks)):
                    _completion(out, rank).unlink(missing_ok=True)
    for marker in sorted((out / "logs" / "completions").glob("*")):
        shard = out / get_output_filename(None, int(marker.name), "unshuffled")
        try:
            check_shard(shard)
        except (SmollabError, FileNotFoundError):
            marker.unlink()
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=1))


def _tokenize_source(
    name: str, config: SourceConfig, out: Path, tok: RecipeTokenizer, eos: str, executor: ExecutorConfig, job_name: str,
) -> dict | None:
    """Tokenize one source into ``out`` (skipping finished tasks) and write its ``summary.json``.

    ``None`` when Slurm tasks were submitted and have not all finished yet.
    """
    logs = out / "logs"
    tasks = _task_count(name, config, executor)
    _keep_vouched_tasks(name, out, _fingerprint(name, config, tok, eos, tasks))
    if not tasks_done(logs, tasks):
        _executor(name, config, out, tok, eos, executor, tasks, job_name).run()
    if not tasks_done(logs, tasks):
        if executor.kind == "slurm":
            return None
        raise SmollabError(
            f"data.sources.{name}: {tasks - len(list((logs / 'completions').glob('*')))} of {tasks} tokenize tasks did not finish; "
            f"see {logs / 'logs'} and run the same command again to redo them"
        )
    return _write_source_summary(name, out, tok, eos, tasks)


def _executor(
    name: str, config: SourceConfig, out: Path, tok: RecipeTokenizer, eos: str, executor: ExecutorConfig, tasks: int, job_name: str,
) -> PipelineExecutor:
    """The datatrove executor of one source's ``reader → [min_doc_tokens] → DocumentTokenizer`` pipeline."""
    logs = out / "logs"
    reader = reader_for(name, config, report_folder=str(logs))
    if isinstance(reader, HubReader) and not _completion(out, 0).exists():
        reader.check_reachable()
    length_filter = [MinTokensFilter(tok.file, config.min_doc_tokens, get_datafolder(str(logs)))] if config.min_doc_tokens else []
    pipeline = [
        reader,
        *length_filter,
        DocumentTokenizer(
            output_folder=str(out),
            tokenizer_name_or_path=tok.file,
            eos_token=eos,
            shuffle_documents=False,
            batch_size=1000,
        ),
    ]
    return executor_for(executor, pipeline, tasks, logs, job_name, local=_FileLoggedExecutor)


def _write_source_summary(name: str, out: Path, tok: RecipeTokenizer, eos: str, tasks: int) -> dict:
    stream = TokenStream(out)
    counts: Counter[str] = Counter()
    examples: dict[str, list] = {}
    filtered_out = 0
    for report in sorted((out / "logs" / "bad_records").glob("*.json")):
        data = json.loads(report.read_text())
        counts.update(data["counts"])
        filtered_out += data.get("filtered_out", 0)
        for reason, found in data["examples"].items():
            examples.setdefault(reason, []).extend(found)
    too_short = sum(json.loads(report.read_text())["too_short"] for report in (out / "logs" / "length_filter").glob("*.json"))
    summary = {
        "source": name,
        "tokens": stream.num_tokens,
        "documents": stream.num_docs,
        "bad_records": dict(sorted(counts.items())),
        "bad_examples": {reason: found[:3] for reason, found in sorted(examples.items())},
        "filtered_out": filtered_out,
        "too_short": too_short,
        "tokenizer": tok.name,
        "vocab_size": len(tok.tokenizer),
        "dtype": str(stream.token_dtype),
        "eos": eos,
        "eos_id": tok.tokenizer.convert_tokens_to_ids(eos),
        "tasks": tasks,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def tokenize_recipe(recipe: Recipe, workers: int | None = None, console: Console | None = None) -> dict:
    """Tokenize every source of the recipe into ``recipe.shards_dir``; returns (and writes) the overall summary.

    ``workers`` (tasks run at once) overrides ``data.executor.workers``; both unset, tasks run one at a
    time in this process (the CLI's default is every core instead).
    When Slurm tasks are still to finish, returns ``{"shards_dir", "pending": [sources]}`` and writes no summary.
    """
    recipe.check_out_dir()
    tok = tokenizer_for_recipe(recipe)
    eos = recipe.data.eos
    if eos not in tok.tokenizer.get_vocab():
        raise SmollabError(f"data.eos: '{eos}' is not a token of tokenizer {tok.name}; use one of {', '.join(tok.tokenizer.all_special_tokens)}")
    shards_dir = recipe.shards_dir
    executor = recipe.data.executor
    executor = executor.model_copy(update={"workers": workers or executor.workers or 1})
    for name, config in recipe.data.sources.items():  # fail before any work, not after the first sources
        _refuse_mixing(shards_dir / name, name, _fingerprint(name, config, tok, eos, _task_count(name, config, executor)))
    sources = {}
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=console is None,
    ) as progress:
        bar = progress.add_task("tokenizing", total=len(recipe.data.sources))
        for name, config in recipe.data.sources.items():
            progress.update(bar, description=f"tokenizing [bold]{name}[/]")
            job_name = f"{recipe.name}-tokenize-{name}"
            sources[name] = _tokenize_source(name, config, shards_dir / name, tok, eos, executor, job_name)
            progress.advance(bar)
    if pending := [name for name, summary in sources.items() if summary is None]:
        if console is not None:
            console.print(f"tokenize tasks submitted to slurm for {', '.join(pending)}; "
                          "run the same command again once they finish to write the summaries")
        return {"shards_dir": str(shards_dir), "pending": pending}
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
        "sources": {name: {k: s[k] for k in ("tokens", "documents", "bad_records", "filtered_out", "too_short")}
                    for name, s in sources.items()},
    }
    shards_dir.mkdir(parents=True, exist_ok=True)
    (shards_dir / "summary.json").write_text(json.dumps(overall, indent=1))
    if console is not None:
        console.print(summary_table(overall))
    for name, summary in sources.items():
        if summary["documents"] == 0:
            raise SmollabError(_no_documents(name, recipe.data.sources[name], summary, shards_dir / name / "summary.json"))
    return overall


def _no_documents(name: str, config: SourceConfig, summary: dict, summary_file: Path) -> str:
    """Why a source yielded no document, and the fix, in one line."""
    bad, filtered = summary["bad_records"], summary["filtered_out"]
    if set(bad) == {"missing_text_field"}:
        n, detail = bad["missing_text_field"], summary["bad_examples"]["missing_text_field"][0]["detail"]
        if config.hf:
            return (
                f"data.sources.{name}: none of the {n:,} records of '{config.hf}' has the document text ({detail}); "
                "this release may hold only ids (Stack-Edu's does): fetch the contents as its dataset card explains "
                f"and point data.sources.{name}.files at them"
            )
        return (
            f"data.sources.{name}: none of its {n:,} records has the document text ({detail}); "
            f"set data.sources.{name}.text to the field that holds it, or write a .template"
        )
    if summary["too_short"] and not bad:
        return (f"data.sources.{name}: min_doc_tokens {config.min_doc_tokens:,} left no document ({summary['too_short']:,} "
                f"shorter, filtered_out {filtered:,}); lower it or read a source with longer documents")
    if filtered and not bad:
        return f"data.sources.{name}: .where {config.where} filtered out all {filtered:,} records; check its field paths and values"
    if bad:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in bad.items())
        return f"data.sources.{name}: no record became a document ({reasons}; filtered_out {filtered:,}); examples in {summary_file}"
    return f"data.sources.{name}: its input holds no records; check the files or dataset it names"


def summary_table(overall: dict) -> Table:
    table = Table(title=f"token shards in {overall['shards_dir']} ({overall['tokenizer']}, {overall['dtype']})")
    table.add_column("source")
    table.add_column("documents", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("bad records")
    table.add_column("filtered out", justify="right")
    for name, s in overall["sources"].items():
        bad = ", ".join(f"{reason} {n:,}" for reason, n in s["bad_records"].items()) or "-"
        style = "red" if s["documents"] == 0 else None  # every record bad: most likely the wrong text field
        parts = ([f"{s['filtered_out']:,}"] if s["filtered_out"] else []) + ([f"{s['too_short']:,} too short"] if s["too_short"] else [])
        filtered = " + ".join(parts) or "-"
        table.add_row(name, f"{s['documents']:,}", f"{s['tokens']:,}", bad, filtered, style=style)
    table.add_row("[bold]total", f"[bold]{overall['documents']:,}", f"[bold]{overall['tokens']:,}", "", "")
    return table


def tokenize(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. data.shards_dir=/tmp/shards")] = None,
    workers: Annotated[int | None, typer.Option(
        help="tasks run in parallel (default: data.executor.workers, else every core); the shards do not depend on it "
             "(worker processes take ~10 s to start)")] = None,
    out: Annotated[str | None, typer.Option(
        help="run directory, as for `smollab train --out`: shards go to <out>/shards unless data.shards_dir is set")] = None,
) -> None:
    """Tokenize every source of RECIPE into token shards (datatrove .ds + .index), skipping finished ones.

    Writes <shards_dir>/<source>/ (shards, summary.json with bad records per reason) and <shards_dir>/summary.json.

    Example: smollab tokenize recipes/demo.yaml --out runs/demo --workers 2
    """
    console = table_console(stderr=True)
    loaded = load_recipe(recipe, (overrides or []) + ([f"out={out}"] if out else []))
    overall = tokenize_recipe(loaded, workers=workers or loaded.data.executor.workers or os.cpu_count(), console=console)
    if "pending" not in overall:
        console.print(f"summary: {Path(overall['shards_dir']) / 'summary.json'}")
