"""Shared helpers for the curation tests: real rows from the bundled samples and the shared data kit."""

import gzip
import json
from pathlib import Path

from smollab.paths import ASSETS

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def rows(name: str, limit: int | None = None) -> list[dict]:
    """Rows of a bundled sample (assets/pretrain or assets/curate) or of a shared-data path like 'eval/gsm8k_test'."""
    for path in (ASSETS / "pretrain" / f"{name}.jsonl.gz", ASSETS / "curate" / f"{name}.jsonl.gz", SHARED / f"{name}.jsonl.gz"):
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
