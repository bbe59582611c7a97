"""Read the documents of one recipe source as datatrove reader blocks, counting bad records.

A source is local files (``files``: globs of .jsonl, .jsonl.gz, .parquet), a bundled sample
(``bundled``) or a streamed HF dataset (``hf``). Each becomes a datatrove reader, so the same block
feeds the tokenizer trainer and the ``DocumentTokenizer`` pipeline. Bad records (malformed JSON,
invalid UTF-8, a missing or empty text field, a file that is damaged part-way) never stop a run: they
are skipped, counted per reason and a few are kept with their ``file:line``; a damaged file keeps the
records read before the damage. Records that a source's ``where`` filter rejects are counted apart,
as ``filtered_out``, since they are not faults. The trade-off: each JSON line is decoded by hand
(bytes → UTF-8 → JSON) instead of through datatrove's ``JsonlReader``, which gives up on the rest of a
file at its first undecodable byte.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import string
import zlib
from collections import Counter
from pathlib import Path

import httpx
import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolder, get_datafolder
from datatrove.pipeline.readers.base import BaseDiskReader, BaseReader
from datatrove.pipeline.readers.huggingface import HuggingFaceDatasetReader

from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.recipe import SourceConfig

BUNDLED = ASSETS / "pretrain"
FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
EXAMPLES_PER_REASON = 3
# What a damaged .jsonl.gz raises part-way: truncated, overwritten, not gzip at all.
CORRUPT_GZIP = (EOFError, gzip.BadGzipFile, zlib.error)
# How `datasets` reports a hub it cannot reach: ConnectionError (also offline mode) when resolving the
# dataset, httpx transport errors while streaming.
HUB_UNREACHABLE = (ConnectionError, httpx.TransportError)
_MISSING = object()


class BadRecord(Exception):
    """A record that cannot become a document; ``reason`` is the counter it lands in."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def record_text(record: object, config: SourceConfig) -> str:
    """The document text of one record: its ``text`` field (a list joined by ``text_join``), or ``template`` filled."""
    if not isinstance(record, dict):
        raise BadRecord("not_a_record", f"expected a JSON object, got {type(record).__name__}")
    if config.template is not None:
        try:
            value = config.template.format_map(record)
        except KeyError as err:
            raise BadRecord("missing_text_field", f"template field {err} is missing") from None
        except (IndexError, AttributeError, TypeError, ValueError) as err:
            raise BadRecord("missing_text_field", f"template cannot be filled: {err}") from None
    else:
        value = record.get(config.text)
        if value is None:
            raise BadRecord("missing_text_field", f"no '{config.text}' field (fields: {', '.join(map(str, record))})")
        if isinstance(value, list) and config.text_join is not None:
            value = _join_text(value, config.text, config.text_join)
        if not isinstance(value, str):
            raise BadRecord("text_not_a_string", f"'{config.text}' is a {type(value).__name__}")
    if not value.strip():
        raise BadRecord("empty_text", "the text is empty or whitespace")
    return value


def _join_text(parts: list, field: str, separator: str) -> str:
    """Interleaved text as InfiMM-WebMath stores it: strings, with None where an image sits (dropped)."""
    texts = [part for part in parts if part is not None]
    if not all(isinstance(part, str) for part in texts):
        kinds = sorted({type(part).__name__ for part in texts if not isinstance(part, str)})
        raise BadRecord("text_not_a_string", f"'{field}' holds {', '.join(kinds)} items, not only strings and None")
    return separator.join(texts)


def record_field(record: dict, path: str) -> object:
    """The value at a dotted ``path``; a JSON-encoded string on the way is decoded (InfiMM's ``metadata`` may be one)."""
    value: object = record
    for key in path.split("."):
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return _MISSING
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def record_matches(record: dict, where: dict) -> bool:
    """Whether every dotted field of ``where`` equals its value, or is one of its list; a missing field never matches."""
    for path, wanted in where.items():
        value = record_field(record, path)
        if value is _MISSING or value not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    return True


class BadRecordAccounting:
    """Mixin for datatrove readers: turn records into documents, counting the ones that cannot be.

    Counts and examples of one task are written to ``<report_folder>/bad_records/<rank>.json`` when
    the task has read its whole input, so they survive worker processes and skipped re-runs.
    """

    def _init_accounting(self, config: SourceConfig, report_folder: DataFolder | None) -> None:
        self.config = config
        self.report_folder = report_folder
        self.bad_counts: Counter[str] = Counter()
        self.bad_examples: dict[str, list[dict]] = {}
        self.filtered_out = 0

    def count_bad(self, reason: str, where: str, detail: str) -> None:
        self.bad_counts[reason] += 1
        examples = self.bad_examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append({"where": where, "detail": detail})

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str) -> Document | None:
        where = f"{source_file}:{id_in_file}"
        if self.config.where and isinstance(data, dict) and not record_matches(data, self.config.where):
            self.filtered_out += 1
            return None
        try:
            text = record_text(data, self.config)
        except BadRecord as bad:
            self.count_bad(bad.reason, where, bad.detail)
            return None
        return Document(text=text, id=where)

    def write_bad_records(self, rank: int) -> None:
        if self.report_folder is None:
            return
        report = {"counts": dict(sorted(self.bad_counts.items())), "examples": self.bad_examples, "filtered_out": self.filtered_out}
        with self.report_folder.open(f"bad_records/{rank:05d}.json", "w") as f:
            json.dump(report, f, indent=1)


def task_share(items: list, rank: int, world_size: int) -> list:
    """Task ``rank``'s contiguous block of ``items``; the blocks in rank order are ``items`` again, sizes differing by at most one."""
    return items[rank * len(items) // world_size : (rank + 1) * len(items) // world_size]


class FilesReader(BadRecordAccounting, BaseDiskReader):
    """Local .jsonl / .jsonl.gz / .parquet files; task ``rank`` reads its ``task_share`` of the sorted files.

    Contiguous blocks, not datatrove's stride: the shards in rank order then hold the documents in
    input order, so the token stream is the same for any task count.
    """

    name = "📄 smollab files"

    def __init__(self, paths: list[Path], config: SourceConfig, limit: int = -1, report_folder: DataFolder | None = None):
        root = Path(os.path.commonpath([p.parent for p in paths]))
        super().__init__(get_datafolder(str(root)), limit=limit, add_file_path=False)
        self.paths = [str(p.relative_to(root)) for p in paths]
        self._init_accounting(config, report_folder)

    def read_file(self, filepath: str) -> DocumentsPipeline:
        # Documents and bad-record examples name the full path, so a report line leads to the record.
        where = self.data_folder.resolve_paths(filepath)
        if filepath.endswith(".parquet"):
            yield from self._read_parquet(filepath, where)
        else:
            yield from self._read_jsonl(filepath, where)

    def count_corrupt(self, where: str, unit: str, read: int, err: Exception) -> None:
        """A file damaged part-way is one bad record; the ``read`` records before the damage were kept."""
        detail = f"unreadable after {unit} {read:,} ({type(err).__name__}: {err}); re-download or re-create the file"
        self.count_bad("corrupt_file", f"{where}:{read + 1}", detail)

    def _read_jsonl(self, filepath: str, where: str) -> DocumentsPipeline:
        line_number = 0
        try:
            with self.data_folder.open(filepath, "rb", compression="infer") as f:
                for line_number, raw in enumerate(f, start=1):
                    if not raw.strip():
                        continue
                    with self.track_time():
                        try:
                            record = orjson.loads(raw.decode("utf-8"))
                        except UnicodeDecodeError as err:
                            self.count_bad("invalid_utf8", f"{where}:{line_number}", str(err))
                            continue
                        except orjson.JSONDecodeError as err:
                            self.count_bad("malformed_json", f"{where}:{line_number}", str(err))
                            continue
                        document = self.get_document_from_dict(record, where, line_number)
                    if document:
                        yield document
        except CORRUPT_GZIP as err:
            self.count_corrupt(where, "line", line_number, err)

    def _read_parquet(self, filepath: str, where: str) -> DocumentsPipeline:
        import pyarrow as pa
        import pyarrow.parquet as pq

        row_number = 0
        try:
            with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f) as parquet:
                # Batches of one row group at a time: damage in a row group then spares the rows before it.
                for group in range(parquet.num_row_groups):
                    for batch in parquet.iter_batches(batch_size=1000, row_groups=[group]):
                        for record in batch.to_pylist():
                            row_number += 1
                            if document := self.get_document_from_dict(record, where, row_number):
                                yield document
        except (pa.ArrowException, OSError) as err:  # pyarrow reports a broken page as a plain OSError
            self.count_corrupt(where, "row", row_number, err)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for document in self.read_files_shard(task_share(self.paths, rank, world_size)):
            self.update_doc_stats(document)
            yield document
        self.write_bad_records(rank)


class HubReader(BadRecordAccounting, HuggingFaceDatasetReader):
    """A Hugging Face hub dataset, streamed (nothing is downloaded up front)."""

    name = "🤗 smollab hub"

    def __init__(self, source: str, config: SourceConfig, limit: int = -1, report_folder: DataFolder | None = None):
        options = {"split": config.split} | ({"name": config.hf_config} if config.hf_config else {})
        super().__init__(config.hf, dataset_options=options, streaming=True, limit=limit)
        self.source = source
        self._init_accounting(config, report_folder)

    def check_reachable(self) -> None:
        """Resolve the dataset's files without reading a row, so an unreachable hub is one line before work starts.

        Inside a datatrove task the same error would first be logged as a long traceback; the price is
        one extra round of hub metadata requests per tokenize run.
        """
        from datasets import load_dataset

        try:
            load_dataset(self.dataset, **self.dataset_options, streaming=True)
        except HUB_UNREACHABLE as err:
            raise self._unreachable(err) from None

    def _unreachable(self, err: Exception) -> SmollabError:
        from huggingface_hub.constants import is_offline_mode

        why = "offline mode: HF_HUB_OFFLINE is set" if is_offline_mode() else f"{type(err).__name__}: {err}"
        return SmollabError(
            f"data.sources.{self.source}: the Hugging Face hub is unreachable ({why}) for '{self.dataset}'; "
            f"download the dataset where the hub is reachable and point data.sources.{self.source}.files at the "
            "local copy (.parquet / .jsonl / .jsonl.gz)"
        )

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        try:
            yield from super().run(data, rank, world_size)
        except HUB_UNREACHABLE as err:
            raise self._unreachable(err) from None
        self.write_bad_records(rank)


def source_files(name: str, config: SourceConfig) -> list[Path]:
    """The sorted, de-duplicated input files of a ``files`` or ``bundled`` source."""
    if config.bundled:
        path = BUNDLED / f"{config.bundled}.jsonl.gz"
        if not path.exists():
            available = ", ".join(sorted(p.name.removesuffix(".jsonl.gz") for p in BUNDLED.glob("*.jsonl.gz")))
            raise SmollabError(f"data.sources.{name}.bundled: no bundled sample '{config.bundled}'; use one of {available}")
        return [path]
    found: set[Path] = set()
    for pattern in config.files or []:
        matches = [Path(m).resolve() for m in glob.glob(os.path.expanduser(pattern), recursive=True)]
        matches = [m for m in matches if m.is_file()]
        if not matches:
            raise SmollabError(f"data.sources.{name}.files: '{pattern}' matches no file; fix the path or glob")
        for match in matches:
            if not match.name.endswith(FILE_SUFFIXES):
                raise SmollabError(
                    f"data.sources.{name}.files: {match} is not one of {', '.join(FILE_SUFFIXES)}; "
                    "narrow the glob to supported files"
                )
        found.update(matches)
    return sorted(found)


def check_template(name: str, config: SourceConfig) -> None:
    """A template that is not a valid format string is a recipe error, not a bad record."""
    if config.template is None:
        return
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(config.template) if field is not None]
    except ValueError as err:
        raise SmollabError(f"data.sources.{name}.template: {err}; write fields as {{name}} and double literal braces") from None
    if not fields or any(not f for f in fields):
        raise SmollabError(
            f"data.sources.{name}.template: '{config.template}' must name record fields, e.g. '{{question}}\\n{{answer}}'"
        )


def reader_for(name: str, config: SourceConfig, limit: int | None = None, report_folder: str | None = None) -> BaseReader:
    """The datatrove reader block of one source; ``limit`` caps good documents together with ``config.limit``.

    With ``report_folder``, each task writes its bad-record counts to ``bad_records/<rank>.json`` there.
    """
    check_template(name, config)
    folder = get_datafolder(report_folder) if report_folder else None
    caps = [c for c in (limit, config.limit) if c is not None]
    cap = min(caps) if caps else -1
    if config.hf:
        return HubReader(name, config, limit=cap, report_folder=folder)
    return FilesReader(source_files(name, config), config, cap, folder)
