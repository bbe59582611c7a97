"""Helpers for the curation tests: real rows from the samples bundled in smollab/assets, and JSONL I/O."""

import gzip
import json
from pathlib import Path

from smollab.curate.config import CurateConfig
from smollab.paths import ASSETS


def rows(name: str, limit: int | None = None) -> list[dict]:
    """Rows of a bundled sample: a name in assets/pretrain or assets/curate, or a path under assets like 'eval/gsm8k_test'."""
    for path in (ASSETS / "pretrain" / f"{name}.jsonl.gz", ASSETS / "curate" / f"{name}.jsonl.gz", ASSETS / f"{name}.jsonl.gz"):
        if path.exists():
            with gzip.open(path, "rt") as f:
                out = [json.loads(line) for line in f]
            return out[:limit]
    raise FileNotFoundError(name)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


def read_curated(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(Path(folder).glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]


def curate_config(root: Path, score: dict, **sections) -> CurateConfig:
    """Curation of the session corpus (``conftest.corpus``) with its trained classifier: no filters, annotation or decontamination."""
    return CurateConfig.model_validate({
        "inputs": {"mixed": {"files": [str(root / "in" / "*.jsonl.gz")], "filters": False}},
        "decontam": None, "annotate": None,
        "classifier": {"pretrained": str(root / "clf")},
        "score": score,
        "executor": {"tasks": 2, "workers": 1},
        **sections,
    })
