"""A synthetic conversation as it is built, what can be wrong with one reply, and the screens all pass.

A ``Draft`` collects turns; the first bad reply (empty, or cut off at ``max_tokens``) marks the whole
draft dropped with that reason and stops its generation, so no conversation is half kept. The
``Screen`` then runs over every surviving draft of every generator, in order: decontamination (any turn
sharing a word n-gram with an evaluation item: ``contaminated:<task>``) and exact dedup on normalised
text (lower-cased ``\\w+`` words, so case, punctuation and spacing do not hide a copy). The trade-off:
exact keys are cheap and certain but miss near duplicates — a paraphrased query, a changed number or
name, a reordered list — which MagPie-Ultra removed with embedding nearest neighbours (gte-large +
FAISS) and curation's MinHash would catch on whole documents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from smollab.curate.decontam import NGramIndex, words
from smollab.post.synth.config import SynthDecontamConfig, SynthDedupConfig
from smollab.post.template import Messages


class Ask(Protocol):
    """smollab.llm.ask bound to one generator, the run's cache and its progress bar."""

    notes: dict
    """what the generator reports besides its counts (e.g. the rewrite source's bad records)"""

    def __call__(self, stage: str, requests: list[dict]) -> list[dict]:
        """``{"answer", "cached", "truncated"}`` per request, in order."""


REASONS = ("empty_user", "empty_answer", "truncated", "duplicate")
"""reasons every generator can drop for, listed in the report even at zero (beside constraint_failed:<id> and
contaminated:<task>)"""


@dataclass
class Draft:
    source: str
    """the generator: magpie, constraints, rewrite"""
    id: str
    messages: Messages = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    """what the record carries besides its messages: category, constraints, kind, ..."""
    reason: str | None = None
    detail: str = ""

    def drop(self, reason: str, detail: str = "") -> None:
        self.reason, self.detail = reason, detail

    def add(self, role: str, reply: dict) -> None:
        """Append a reply as a turn (stripped: SFT's loader refuses leading whitespace), or drop the draft."""
        text = reply["answer"].strip()
        self.messages.append({"role": role, "content": text})
        if not text:
            self.drop("empty_user" if role == "user" else "empty_answer")
        elif reply["truncated"]:
            self.drop("truncated", f"the {role} turn reached max_tokens")

    def record(self) -> dict:
        """The line of ``synth.jsonl``: ``smollab sft`` reads its ``messages``."""
        return {"messages": self.messages, "source": self.source, "id": self.id, **self.meta}


def live(drafts: list[Draft]) -> list[int]:
    """Indices of the drafts not dropped yet."""
    return [i for i, draft in enumerate(drafts) if draft.reason is None]


def request_seed(base: int, *parts: object) -> int:
    """A 31-bit seed for one request, a pure function of the recipe seed and where the request sits."""
    return int.from_bytes(hashlib.sha1(":".join(map(str, (base, *parts))).encode()).digest()[:4], "big") >> 1


def eval_items(tasks: list[str] | None):
    """(task, item id, text) of the configured evaluation tasks (default: every vendored one)."""
    from smollab.eval.tasks import decontamination_items

    return (item for item in decontamination_items() if tasks is None or item[0] in tasks)


class Screen:
    """Decontamination and exact dedup over the drafts of all generators, first come first kept."""

    def __init__(self, decontam: SynthDecontamConfig | None, dedup: SynthDedupConfig | None):
        self.index = NGramIndex(eval_items(decontam.tasks), decontam.n_gram) if decontam else None
        self.dedup = dedup
        self.seen: set[tuple[str, str]] = set()

    def check(self, draft: Draft) -> None:
        """Drop ``draft`` if it is contaminated or a duplicate of one already kept; otherwise remember its keys."""
        if self.index is not None:
            for turn in draft.messages:
                found = self.index.match(turn["content"])
                if found:
                    task, item_id, ngram = found
                    draft.drop(f"contaminated:{task}", f"{turn['role']} turn shares '{ngram}' with {task} {item_id}")
                    return
        if self.dedup is None:
            return
        keys = []
        if self.dedup.user:
            keys.append(("user", "\n".join(_normal(t["content"]) for t in draft.messages if t["role"] == "user")))
        if self.dedup.assistant:
            keys += [("assistant", _normal(t["content"])) for t in draft.messages if t["role"] == "assistant"]
        repeated = next((key for key in keys if key in self.seen), None)
        if repeated:
            draft.drop("duplicate", f"its {repeated[0]} text is a kept conversation's: {repeated[1][:80]!r}")
            return
        self.seen.update(keys)


def _normal(text: str) -> str:
    return " ".join(words(text))
