"""Chat data for SFT: read sources, keep the valid conversations, hold some out, mix the rest by share.

A source is a hub dataset (``hf``, streamed), local ``messages``-format files (``files``) or a bundled
real sample (``bundled``, smollab/assets/post); ``ChatDataConfig`` is meant as a recipe's ``data``
section, hence the ``data.sources.<name>`` in errors. Every record read is kept or dropped under one
reason (``CHAT_REASONS``) with a few examples; nothing else is dropped. The trade-offs:
- too long: a conversation over ``max_length`` is cut after its last reply that fits (a turn boundary,
  so no answer is half-trained) and counted as ``truncated``; only one whose first exchange does not
  fit is dropped as ``too_long``.
- held-out: decided per conversation by a seeded hash of its content, not its position, so a source
  that grows or is re-ordered never moves a conversation across the split and a duplicate in another
  source lands on the same side; the price is that ``heldout_fraction`` holds only on average.
- mixture: shares are token fractions, as in pretraining. An epoch has as many tokens as the train
  splits of the mixed sources; each source is filled to its share with whole conversations in seeded
  order (repeated when it has too few, subsampled when it has too many), so a source's share is off by
  at most half a conversation; the price is repeating small sources, which the report shows as ``repeats``.
"""

from __future__ import annotations

import gzip
import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel, Field, model_validator
from transformers import PreTrainedTokenizerBase

from smollab.data.sources import CORRUPT_GZIP, EXAMPLES_PER_REASON, HUB_UNREACHABLE, BadRecord, source_files
from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.post.template import ROLES, TRAINED_ROLES, Messages, TurnBoundaryMerge, assistant_mask, render
from smollab.recipe import SourceConfig, Strict

BUNDLED = ASSETS / "post"
CHAT_REASONS = ("malformed", "corrupt_file", "unknown_role", "empty_turn", "no_assistant_turn", "not_alternating",
                "merges_across_turn", "too_long")
# Turn order as a state machine: system?, then (user, reply)+ where a reply is (tool_call, tool)* assistant.
_NEXT_STATE = {
    "start": {"system": "open", "user": "asked"},
    "open": {"user": "asked"},
    "asked": {"assistant": "answered", "tool_call": "calling"},
    "calling": {"tool": "asked"},
    "answered": {"user": "asked"},
}


class SourceLocation(Strict):
    """Where one source's records are; exactly one of ``hf``, ``files``, ``bundled``."""

    hf: str | None = Field(None, description="HF dataset id, streamed with `datasets`")
    hf_config: str | None = Field(None, description="the dataset's configuration, e.g. 'all' for HuggingFaceTB/smoltalk")
    split: str = "train"
    files: list[str] | None = Field(None, description="local globs: .jsonl, .jsonl.gz, .parquet")
    bundled: str | None = Field(None, description="name of a sample in smollab/assets/post")
    limit: int | None = Field(None, ge=1, description="read at most this many records (broken ones included)")

    @model_validator(mode="after")
    def _one_location(self) -> SourceLocation:
        given = [k for k in ("hf", "files", "bundled") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of hf, files, bundled (got {given or 'none'})")
        return self


class ChatSourceConfig(SourceLocation):
    messages: str = Field("messages", description="the field holding the list of {role, content} turns")


def check_mixture(mixture: dict[str, float] | None, sources: dict) -> None:
    """Shares are token fractions in [0, 1] summing to 1, one per source (0: held-out evaluation only)."""
    if mixture is None:
        return
    for name in sorted(set(mixture) ^ set(sources)):
        if name in mixture:
            raise ValueError(f"mixture: unknown source '{name}'; define it under sources or fix the name "
                             f"({', '.join(sources)})")
        raise ValueError(f"mixture: source '{name}' has no share; give it one (0 keeps it for held-out evaluation only)")
    for name, share in mixture.items():
        if not 0 <= share <= 1:
            raise ValueError(f"mixture: share {share} of '{name}' is outside [0, 1]; shares are token fractions")
    total = sum(mixture.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"mixture: shares sum to {total:g}, not 1; scale them so they add up to 1")


class ChatDataConfig(Strict):
    sources: dict[str, ChatSourceConfig] = Field(min_length=1)
    mixture: dict[str, float] | None = Field(None, description="token share per source, summing to 1; "
                                             "default: every train conversation once")
    max_length: int = Field(8192, ge=16, description="tokens per conversation; longer ones are cut at a turn "
                            "boundary (SmolLM2 SFT: 8192)")
    heldout_fraction: float = Field(0.05, ge=0, lt=1, description="share of each source's conversations held out")
    seed: int = Field(42, description="held-out split and mixture order (SmolLM2 SFT: 42)")

    @model_validator(mode="after")
    def _shares(self) -> ChatDataConfig:
        check_mixture(self.mixture, self.sources)
        return self


class Item(Protocol):
    source: str
    id: str
    fingerprint: str
    num_tokens: int


T = TypeVar("T", bound=Item)


@dataclass(frozen=True)
class Conversation:
    source: str
    id: str
    messages: Messages
    num_tokens: int
    """tokens of the rendered conversation, as kept (after any cut)"""
    fingerprint: str
    """hash of the conversation as read, before any cut: decides its side of the held-out split"""

    def record(self) -> dict:
        """The row TRL's ``SFTTrainer`` reads (conversational ``messages`` format)."""
        return {"messages": self.messages}


@dataclass
class SourceReport:
    read: int = 0
    train: int = 0
    heldout: int = 0
    truncated: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)

    def drop(self, bad: BadRecord, where: str) -> None:
        self.dropped[bad.reason] += 1
        examples = self.examples.setdefault(bad.reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append({"where": where, "detail": bad.detail})


@dataclass
class ChatData(Generic[T]):
    """Kept conversations (or preference pairs) of every source, split, with what was dropped and why."""

    config: BaseModel
    """the ``ChatDataConfig`` or ``PreferenceDataConfig`` it was loaded with"""
    reasons: tuple[str, ...]
    """every check a record can fail, listed in the report even at zero"""
    train_by_source: dict[str, list[T]]
    heldout: list[T]
    """every held-out item once, source by source in read order"""
    sources: dict[str, SourceReport]
    train: list[T] = field(init=False)
    """epoch 0 of the mixture"""

    def __post_init__(self) -> None:
        self.train = self.epoch(0)

    def epoch(self, index: int) -> list[T]:
        """One epoch of the mixture, shuffled; a pure function of (seed, index)."""
        shares = self.config.mixture
        if shares is None:
            chosen = [item for items in self.train_by_source.values() for item in items]
        else:
            total = sum(item.num_tokens for name, items in self.train_by_source.items() if shares[name]
                        for item in items)
            chosen = [item for name, items in self.train_by_source.items()
                      for item in _fill(items, shares[name] * total, random.Random(f"{self.config.seed}:{index}:{name}"))]
        random.Random(f"{self.config.seed}:{index}").shuffle(chosen)
        return chosen

    def report(self) -> dict:
        """What a trainer writes to ``<out>/data_report.json``: per source, read / kept / dropped per reason."""
        epoch_tokens = Counter()
        epoch_count = Counter()
        for item in self.train:
            epoch_tokens[item.source] += item.num_tokens
            epoch_count[item.source] += 1
        total = sum(epoch_tokens.values())
        sources = {}
        for name, source in self.sources.items():
            sources[name] = {
                "read": source.read, "train": source.train, "heldout": source.heldout, "truncated": source.truncated,
                "dropped": {reason: source.dropped[reason] for reason in self.reasons} | dict(source.dropped),
                "examples": source.examples,
                "epoch": {"count": epoch_count[name], "tokens": epoch_tokens[name],
                          "share": round(epoch_tokens[name] / total, 4) if total else 0.0,
                          "repeats": round(epoch_count[name] / source.train, 3) if source.train else 0.0},
            }
        return {
            "config": self.config.model_dump(mode="json"),
            "train": {"count": len(self.train), "tokens": total},
            "heldout": {"count": len(self.heldout), "tokens": sum(item.num_tokens for item in self.heldout)},
            "sources": sources,
        }


def _fill(items: list[T], target_tokens: float, rng: random.Random) -> list[T]:
    """Whole items in seeded passes (a fresh permutation each) until ``target_tokens`` is met within half an item."""
    taken: list[T] = []
    tokens = 0
    while items and target_tokens > 0:
        for item in rng.sample(items, len(items)):
            if tokens + item.num_tokens / 2 > target_tokens:
                return taken
            taken.append(item)
            tokens += item.num_tokens
    return taken


def check_turns(turns: object) -> Messages:
    """Each turn as a ``{role, content}`` dict (other keys dropped) of a known role and with text, or ``BadRecord``."""
    if not isinstance(turns, list):
        raise BadRecord("malformed", f"expected a list of {{role, content}} turns, got a {type(turns).__name__}")
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str)):
            raise BadRecord("malformed", f"turn {i} is not a {{role, content}} object with string values: {str(turn)[:80]}")
    turns = [{"role": turn["role"], "content": turn["content"]} for turn in turns]
    for i, turn in enumerate(turns):
        if turn["role"] not in ROLES:
            raise BadRecord("unknown_role", f"turn {i} has role '{turn['role'][:40]}'; roles are {', '.join(ROLES)}")
    for i, turn in enumerate(turns):
        if not turn["content"].strip():
            raise BadRecord("empty_turn", f"turn {i} ({turn['role']}) is empty")
    return turns


def check_conversation(messages: object) -> Messages:
    """The turns of a trainable conversation (``check_turns``, then order), or ``BadRecord`` naming the first fault."""
    turns = check_turns(messages)
    if not turns:
        raise BadRecord("malformed", "the conversation has no turns")
    if not any(turn["role"] in TRAINED_ROLES for turn in turns):
        raise BadRecord("no_assistant_turn", f"no {' or '.join(TRAINED_ROLES)} turn to train on")
    state, previous = "start", "the start"
    for i, turn in enumerate(turns):
        state = _NEXT_STATE[state].get(turn["role"], "")
        if not state:
            raise BadRecord("not_alternating", f"turn {i} is {turn['role']} after {previous}; turns go system?, then "
                                               "(user, reply)+ where a reply is (tool_call, tool)* then assistant")
        previous = turn["role"]
    if state != "answered":
        raise BadRecord("not_alternating", f"the last turn is {previous}; a conversation ends with an assistant reply")
    return turns


def fingerprint(messages: Messages) -> str:
    return hashlib.sha256(orjson.dumps(messages)).hexdigest()


def fit_conversation(messages: Messages, tokenizer: PreTrainedTokenizerBase, max_length: int) -> tuple[Messages, int]:
    """The conversation, cut after its last reply that fits in ``max_length`` tokens, and its token count."""
    try:
        length = len(assistant_mask(messages, tokenizer).input_ids)
    except TurnBoundaryMerge as err:
        raise BadRecord("merges_across_turn", str(err)) from None
    if length <= max_length:
        return messages, length
    reply_ends = [i + 1 for i, turn in enumerate(messages[:-1])
                  if turn["role"] == "assistant" and messages[i + 1]["role"] == "user"]
    for end in reversed(reply_ends):
        length = len(tokenizer(render(messages[:end], tokenizer), add_special_tokens=False)["input_ids"])
        if length <= max_length:
            return messages[:end], length
    raise BadRecord("too_long", f"its first exchange alone takes {length:,} tokens > max_length {max_length:,}")


def _conversation(record: object, source: str, ident: str, report: SourceReport, config: ChatDataConfig,
                  tokenizer: PreTrainedTokenizerBase) -> Conversation:
    field_name = config.sources[source].messages
    if not isinstance(record, dict) or field_name not in record:
        fields = ", ".join(map(str, record)) if isinstance(record, dict) else f"a {type(record).__name__}"
        raise BadRecord("malformed", f"no '{field_name}' field ({fields}); set data.sources.{source}.messages")
    messages = check_conversation(record[field_name])
    kept, length = fit_conversation(messages, tokenizer, config.max_length)
    report.truncated += int(len(kept) < len(messages))
    return Conversation(source, ident, kept, length, fingerprint(messages))


def load_conversations(config: ChatDataConfig, tokenizer: PreTrainedTokenizerBase) -> ChatData[Conversation]:
    """Read, check, split and mix every chat source of ``config``; token counts use ``tokenizer``."""
    return load_sources(config, CHAT_REASONS, partial(_conversation, config=config, tokenizer=tokenizer))


def load_sources(config: BaseModel, reasons: tuple[str, ...],
                 parse: Callable[[object, str, str, SourceReport], T]) -> ChatData[T]:
    """Every record of ``config.sources`` through ``parse(record, source, id, report)``, which returns an item or
    raises ``BadRecord`` with one of ``reasons``; kept items are split into train and held-out by their fingerprint."""
    by_source: dict[str, list[T]] = {}
    heldout: list[T] = []
    reports: dict[str, SourceReport] = {}
    for name, location in config.sources.items():
        report = reports[name] = SourceReport()
        train = by_source[name] = []
        for where, record in read_records(name, location):
            report.read += 1
            try:
                if isinstance(record, BadRecord):
                    raise record
                item = parse(record, name, _record_id(record) or where, report)
            except BadRecord as bad:
                report.drop(bad, where)
                continue
            if _is_heldout(item.fingerprint, config.heldout_fraction, config.seed):
                heldout.append(item)
                report.heldout += 1
            else:
                train.append(item)
                report.train += 1
        if not train and (config.mixture is None or config.mixture[name] > 0):
            dropped = ", ".join(f"{reason}: {n:,}" for reason, n in report.dropped.most_common()) or "none"
            raise SmollabError(
                f"data.sources.{name}: none of its {report.read:,} records is left for training ({report.heldout} held "
                f"out; dropped: {dropped}); fix the source, lower heldout_fraction, or give it share 0 in mixture"
            )
    return ChatData(config, reasons, by_source, heldout, reports)


def _record_id(record: object) -> str | None:
    value = record.get("id") if isinstance(record, dict) else None
    return str(value) if isinstance(value, (str, int)) else None


def _is_heldout(fingerprint: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{fingerprint}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def read_records(name: str, location: SourceLocation) -> Iterator[tuple[str, object]]:
    """``(where, record)`` of one source, at most ``limit``; an undecodable record comes as a ``BadRecord``."""
    records = _hub_records(name, location) if location.hf else _file_records(name, location)
    for count, pair in enumerate(records, start=1):
        yield pair
        if count == location.limit:
            return


def _file_records(name: str, location: SourceLocation) -> Iterator[tuple[str, object]]:
    if location.bundled:
        path = BUNDLED / f"{location.bundled}.jsonl.gz"
        if not path.exists():
            available = ", ".join(sorted(p.name.removesuffix(".jsonl.gz") for p in BUNDLED.glob("*.jsonl.gz")))
            raise SmollabError(f"data.sources.{name}.bundled: no bundled sample '{location.bundled}'; use one of {available}")
        paths = [path]
    else:  # the pretraining sources' glob rules and errors, through a files-only SourceConfig
        paths = source_files(name, SourceConfig(files=location.files))
    for path in paths:
        if path.name.endswith(".parquet"):
            yield from _parquet_records(str(path))
        else:
            yield from _jsonl_records(str(path))


def _jsonl_records(path: str) -> Iterator[tuple[str, object]]:
    line_number = 0
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{line_number}", orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    yield f"{path}:{line_number}", BadRecord("malformed", f"not a JSON line ({err})")
    except CORRUPT_GZIP as err:
        yield f"{path}:{line_number + 1}", BadRecord(
            "corrupt_file", f"unreadable after line {line_number:,} ({type(err).__name__}); re-download or re-create the file")


def _parquet_records(path: str) -> Iterator[tuple[str, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=1000):
                for record in batch.to_pylist():
                    row += 1
                    yield f"{path}:{row}", record
    except (pa.ArrowException, OSError) as err:  # pyarrow reports a broken page as a plain OSError
        yield f"{path}:{row + 1}", BadRecord(
            "corrupt_file", f"unreadable after row {row:,} ({type(err).__name__}); re-download or re-create the file")


def _hub_records(name: str, location: SourceLocation) -> Iterator[tuple[str, object]]:
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.constants import is_offline_mode

    try:
        dataset = load_dataset(location.hf, location.hf_config, split=location.split, streaming=True)
        for row, record in enumerate(dataset, start=1):
            yield f"{location.hf}:{location.split}:{row}", record
    except HUB_UNREACHABLE as err:
        why = "offline mode: HF_HUB_OFFLINE is set" if is_offline_mode() else f"{type(err).__name__}: {_first_line(err)}"
        raise SmollabError(
            f"data.sources.{name}: the Hugging Face hub is unreachable ({why}) for '{location.hf}'; download the "
            f"dataset where the hub is reachable and point data.sources.{name}.files at the local copy "
            "(.parquet / .jsonl / .jsonl.gz)"
        ) from None
    except DatasetNotFoundError:
        raise SmollabError(f"data.sources.{name}.hf: no dataset '{location.hf}' on the Hugging Face hub; "
                           "check the id (org/name)") from None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]
