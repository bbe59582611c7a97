"""Step 4, decontamination: drop documents sharing a word 13-gram with any evaluation item.

SmolLM2 decontaminated FineMath by 13-gram overlap with the benchmarks; we index the n-grams of
every eval question and gold answer (lower-cased ``\\w+`` words) and drop a training document on
its first shared n-gram, recording which task and item it matched. N-grams are 64-bit hashes
(xxhash of words, combined polynomially in numpy) kept in one sorted array, so the index of all
vendored tasks is a few MB, pickles cheaply to worker processes and is probed with
``searchsorted``; the trade-off is a ~1e-12 false-match rate per probe from hash collisions. Items
shorter than n words cannot share an n-gram and are counted as unindexed rather than guessed at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import numpy as np
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.filters.base_filter import BaseFilter

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier: distinct word orders give distinct hashes


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngram_hashes(tokens: list[str], n: int) -> np.ndarray:
    """One uint64 hash per window of ``n`` consecutive words (empty when there are fewer)."""
    if len(tokens) < n:
        return np.empty(0, dtype=np.uint64)
    word_h = np.fromiter((xxhash.xxh64_intdigest(t) for t in tokens), dtype=np.uint64, count=len(tokens))
    windows = len(tokens) - n + 1
    acc = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc = acc * _BASE + word_h[k : k + windows]
    return acc


class NGramIndex:
    """Sorted n-gram hashes of eval items, each pointing at the first item that contains it."""

    def __init__(self, items: Iterable[tuple[str, str, str]], n: int = 13):
        self.n = n
        self.labels: list[tuple[str, str]] = []
        self.unindexed: dict[str, int] = {}
        chunks, owners = [], []
        for task, item_id, text in items:
            hashes = ngram_hashes(words(text), n)
            if not len(hashes):
                self.unindexed[task] = self.unindexed.get(task, 0) + 1
                continue
            owners.append(np.full(len(hashes), len(self.labels), dtype=np.int32))
            chunks.append(hashes)
            self.labels.append((task, item_id))
        all_hashes = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.uint64)
        all_owners = np.concatenate(owners) if owners else np.empty(0, dtype=np.int32)
        self.keys, first = np.unique(all_hashes, return_index=True)
        self.owners = all_owners[first]

    def __len__(self) -> int:
        return len(self.keys)

    def match(self, text: str) -> tuple[str, str, str] | None:
        """``(task, item_id, shared n-gram)`` of the first overlap, or None."""
        tokens = words(text)
        probes = ngram_hashes(tokens, self.n)
        if not len(probes) or not len(self.keys):
            return None
        where = np.searchsorted(self.keys, probes).clip(max=len(self.keys) - 1)
        hits = np.flatnonzero(self.keys[where] == probes)
        if not len(hits):
            return None
        first = int(hits[0])
        task, item_id = self.labels[self.owners[where[first]]]
        return task, item_id, " ".join(tokens[first : first + self.n])


class Decontaminate(BaseFilter):
    """Drops documents overlapping an eval item; writes ``removed_<rank>.jsonl`` (id, task, item, n-gram)."""

    name = "🧪 decontam"

    def __init__(self, items: Iterable[tuple[str, str, str]], removed_folder: DataFolderLike, n_gram: int = 13):
        super().__init__()
        self.index = NGramIndex(items, n_gram)
        self.removed_folder = get_datafolder(str(removed_folder))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        found = self.index.match(doc.text)
        if found is None:
            return True
        task, item_id, ngram = found
        self.stat_update(f"task_{task}")
        self._removed.write(json.dumps({"id": doc.id, "task": task, "item_id": item_id, "ngram": ngram}) + "\n")
        return False, "contaminated"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.removed_folder.open(f"removed_{rank:05d}.jsonl", "wt") as self._removed:
            yield from super().run(data, rank, world_size)
