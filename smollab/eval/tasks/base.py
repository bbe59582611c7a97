"""What a task is: vendored rows, a prompt function and a scoring rule.

A task module builds one ``MultipleChoiceTask`` or ``GenerativeTask`` from plain functions
(row -> prompt; generation -> answer), in the spirit of lm-eval's "data + prompt + metric". Rows
come from gzip JSON-lines files shipped in ``smollab/assets/eval`` so evaluation is offline and
fixed; the trade-off is that a user who wants the full upstream copy (``hub``) must convert it to
the same fields. Rows are validated on load so a malformed line fails with its file and line
number instead of a ``KeyError`` deep inside scoring.
"""

import gzip
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from smollab.errors import SmollabError
from smollab.paths import ASSETS

EVAL_ASSETS = ASSETS / "eval"


def read_rows(path: Path, required: Sequence[str]) -> list[dict]:
    """All rows of a ``.jsonl.gz`` (or plain ``.jsonl``) file, each checked for the required fields."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SmollabError(f"{path}:{line_no}: not valid JSON ({err.msg}); fix or remove that line.") from None
            missing = [k for k in required if not isinstance(row, dict) or k not in row]
            if missing:
                raise SmollabError(
                    f"{path}:{line_no}: row lacks field(s) {', '.join(missing)}; every row of this task needs "
                    f"{', '.join(required)}.")
            rows.append(row)
    return rows


@cache
def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Choices:
    """One multiple-choice item: choice i is scored as log p(continuations[i] | contexts[i])."""

    contexts: list[str]
    continuations: list[str]
    gold: int


@dataclass(frozen=True)
class Scored:
    """The outcome of one generative item: metric values, the extracted answer and the gold one."""

    metrics: dict[str, float]
    pred: object
    gold: object


def question_answer_prompt(row: dict) -> Choices:
    """The cloze form shared by ARC, PIQA and CommonsenseQA: "Question: q\nAnswer:" then " choice"."""
    context = f"Question: {row['question']}\nAnswer:"
    return Choices([context] * len(row["choices"]), [f" {c}" for c in row["choices"]], row["gold"])


def exact_match_scorer(extract, gold):
    """``score`` for tasks whose metric is exact match of an extracted answer against a normalised gold."""

    def score(rows: Sequence[dict], generations: Sequence[str]) -> list[Scored]:
        pairs = ((extract(text), gold(row)) for row, text in zip(rows, generations))
        return [Scored({"exact_match": float(pred == answer)}, pred, answer) for pred, answer in pairs]

    return score


@dataclass(frozen=True, kw_only=True)
class Task:
    name: str
    file: str
    rows: int  # exact row count of the vendored file
    hub: str  # where the full upstream copy lives, for users who want it
    fields: tuple[str, ...]
    shots: int = 0
    text: Callable[[dict], tuple[str, str]] | None = None  # decontamination text when the prompt hides it
    source_file: Path | None = None  # overrides EVAL_ASSETS / file (tests, user copies)
    percent: bool = True  # metrics are fractions, shown ×100 in tables (not MT-Bench's 1–10 ratings)

    @property
    def path(self) -> Path:
        return self.source_file or EVAL_ASSETS / self.file

    def docs(self) -> list[dict]:
        return _load(self.path, self.fields)

    def text_of(self, row: dict) -> tuple[str, str]:
        """(question/context text, gold answer text) of a row, for decontamination."""
        raise NotImplementedError


@cache
def _load(path: Path, fields: tuple[str, ...]) -> list[dict]:
    return read_rows(path, fields)


@dataclass(frozen=True, kw_only=True)
class MultipleChoiceTask(Task):
    prompt: Callable[[dict], Choices]
    metrics: tuple[str, ...] = ("acc", "acc_norm")

    def text_of(self, row: dict) -> tuple[str, str]:
        if self.text:
            return self.text(row)
        item = self.prompt(row)
        return item.contexts[item.gold], item.continuations[item.gold].strip()


@dataclass(frozen=True, kw_only=True)
class GenerativeTask(Task):
    prompt: Callable[[dict], str]
    score: Callable[[Sequence[dict], Sequence[str]], list[Scored]]
    gold_text: Callable[[dict], str]
    until: tuple[str, ...] = ()
    max_new_tokens: int = 256

    def text_of(self, row: dict) -> tuple[str, str]:
        return self.text(row) if self.text else (self.prompt(row), self.gold_text(row))


@dataclass(frozen=True, kw_only=True)
class CodeTask(GenerativeTask):
    """A generative task scored by running the generated code in ``smollab.eval.sandbox`` (HumanEval).

    Its ``score`` also takes ``allow_unisolated_code``: the runner checks that the sandbox can isolate
    programs before the model runs, and only that flag, the user's explicit consent, lets code run
    where it cannot."""

    score: Callable[..., list[Scored]]


@dataclass(frozen=True, kw_only=True)
class LastWordTask(Task):
    """LAMBADA-style: accuracy is whether greedy decoding reproduces the whole continuation."""

    prompt: Callable[[dict], tuple[str, str]]
    metrics: tuple[str, ...] = field(default=("acc", "perplexity"))

    def text_of(self, row: dict) -> tuple[str, str]:
        context, continuation = self.prompt(row)
        return context, continuation.strip()
