"""Step 1, read: turn the recipe's named inputs into datatrove readers (plus trafilatura for HTML).

datatrove readers pass upstream documents through before reading their own shard, so all inputs
stack into one pipeline: HTML readers first, then the extractor (which therefore only sees pages),
then the text readers. The trade-off: every reader shards by file, so an input that is a single
file is read by one task only; split big corpora into several files to spread them.
Every document id is prefixed with its input name, so ids stay unique across inputs, and records
without text are counted (``skipped_no_text``) rather than silently dropped.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import HuggingFaceDatasetReader, JsonlReader, ParquetReader

from smollab.curate.config import InputConfig
from smollab.errors import SmollabError
from smollab.paths import ASSETS

BUNDLED_DIRS = (ASSETS / "pretrain", ASSETS / "curate")


class RecordAdapter:
    """Maps a raw record to a datatrove document dict (text from a field or a template, prefixed id)."""

    def __init__(self, source: str, text: str, template: str | None, id_key: str, exempt: bool):
        self.source, self.text, self.template, self.id_key, self.exempt = source, text, template, id_key, exempt

    def __call__(self, reader: PipelineStep, data: dict, path: str, id_in_file: int | str) -> dict:
        try:
            text = self.template.format(**data) if self.template else data.get(self.text) or ""
        except (KeyError, IndexError):
            text = ""
        if not text:
            reader.stat_update("skipped_no_text")
        raw_id = data.get(self.id_key)
        # without an id field, the file's path inside its input folder + the line: unique across subfolders
        doc_id = f"{self.source}/{raw_id if raw_id is not None else f'{path}/{id_in_file}'}"
        metadata = {"source": self.source}
        if self.exempt:
            metadata["heuristics_exempt"] = True
        if "url" in data:
            metadata["url"] = data["url"]
        return {"text": text, "id": doc_id, "metadata": metadata}


def bundled_path(name: str) -> Path:
    for folder in BUNDLED_DIRS:
        path = folder / f"{name}.jsonl.gz"
        if path.exists():
            return path
    names = sorted(p.name.removesuffix(".jsonl.gz") for d in BUNDLED_DIRS for p in d.glob("*.jsonl.gz"))
    raise SmollabError(f"curate.inputs: no bundled sample '{name}'; choose one of {', '.join(names)}")


def _split_glob(pattern: str) -> tuple[str, str]:
    """``data/web/*.jsonl.gz`` → (``data/web``, ``*.jsonl.gz``): datatrove wants a folder and a pattern."""
    parts = Path(pattern).parts
    first_magic = next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts) - 1)
    folder = Path(*parts[:first_magic]) if first_magic else Path(".")
    return str(folder), str(Path(*parts[first_magic:]))


def input_readers(name: str, cfg: InputConfig) -> list[PipelineStep]:
    """The reader blocks for one input (one per glob)."""
    text = cfg.text or ("html" if cfg.format == "html" else "text")
    adapter = RecordAdapter(name, text, cfg.template, cfg.id, exempt=not cfg.filters)
    common = dict(adapter=adapter, limit=cfg.limit or -1)
    if cfg.hf:
        options = {"split": cfg.split} | ({"name": cfg.hf_config} if cfg.hf_config else {})
        return [HuggingFaceDatasetReader(cfg.hf, dataset_options=options, **common)]
    locations = [_split_glob(str(bundled_path(cfg.bundled)))] if cfg.bundled else [_split_glob(p) for p in cfg.files]
    readers = []
    for folder, pattern in locations:
        if not glob.glob(os.path.join(folder, pattern), recursive=True):
            raise SmollabError(f"curate.inputs.{name}.files: '{os.path.join(folder, pattern)}' matches no file; fix the glob")
        reader_cls = ParquetReader if cfg.format == "parquet" else JsonlReader
        readers.append(reader_cls(folder, glob_pattern=pattern, **common))
    return readers


def read_blocks(inputs: dict[str, InputConfig]) -> list[PipelineStep]:
    """Readers for every input, HTML ones first so the extractor only touches pages."""
    html = [r for name, cfg in inputs.items() if cfg.format == "html" for r in input_readers(name, cfg)]
    text = [r for name, cfg in inputs.items() if cfg.format != "html" for r in input_readers(name, cfg)]
    return html + ([Trafilatura(favour_precision=True, timeout=10.0)] if html else []) + text
