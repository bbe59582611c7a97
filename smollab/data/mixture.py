"""Stage-aware mixture sampler: which sequence is global sample ``i``, as a pure function.

Every training sample is identified by its global index. Its stage follows from the step it
belongs to (steps never straddle stages); its source follows from a hierarchy of Beatty sequences
(source 0 vs the rest with share w0, then source 1 vs what remains, ...), which gives, in closed
form, the exact number of earlier samples of each source: realised token shares stay within K
samples of the weights over *any* prefix of a stage, and each source is read in order. The
position in a source maps to a window of ``seq_len + 1`` tokens through a keyed Feistel
permutation per epoch, so a source is shuffled without materialising an index. Nothing depends on
the number of ranks or on history: resume is exact and elastic. The trade-off: the interleaving
pattern of sources is regular (stratified) rather than random, and the shuffle is over fixed
windows of the source's token stream (documents joined with EOS, as nanotron does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from smollab.data.shards import tokenize_command
from smollab.errors import SmollabError
from smollab.recipe import Recipe

_SHARE_DENOMINATOR = 1 << 24  # shares are quantised to 1/16.7M: exact integer arithmetic below
_MASK64 = (1 << 64) - 1


class TokenSource(Protocol):
    num_tokens: int

    def slice(self, start: int, stop: int) -> np.ndarray: ...


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-distributed 64-bit integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _key(*parts: int | str) -> int:
    key = 0
    for part in parts:
        value = part if isinstance(part, int) else int.from_bytes(part.encode()[:32].ljust(32, b"\0"), "little")
        key = _mix64(key ^ (value & _MASK64) ^ (value >> 64))
    return key


def permute(index: int, size: int, key: int) -> int:
    """A keyed bijection of ``range(size)``: 4-round Feistel network with cycle walking."""
    if size <= 1:
        return 0
    half = max(1, math.ceil(math.ceil(math.log2(size)) / 2))
    mask = (1 << half) - 1
    x = index
    while True:
        left, right = x >> half, x & mask
        for round_ in range(4):
            left, right = right, left ^ (_mix64(key ^ (round_ << 56) ^ right) & mask)
        x = (left << half) | right
        if x < size:
            return x


@dataclass(frozen=True)
class StagePlan:
    """One stage resolved against the batch geometry: step and sample ranges, integer shares."""

    index: int
    name: str
    start_step: int
    end_step: int  # exclusive
    seq_len: int
    samples_per_step: int
    first_sample: int
    sources: tuple[str, ...]
    shares: tuple[int, ...]  # integer numerators over _SHARE_DENOMINATOR, summing to it
    rope_theta: float | None

    @property
    def num_samples(self) -> int:
        return (self.end_step - self.start_step) * self.samples_per_step

    def weight(self, source: str) -> float:
        return self.shares[self.sources.index(source)] / _SHARE_DENOMINATOR if source in self.sources else 0.0

    def counts(self, n: int, seed: int) -> dict[str, int]:
        """How many of the stage's first ``n`` samples come from each source (closed form)."""
        out, remaining_weight, x = {}, _SHARE_DENOMINATOR, n
        for level, (source, share) in enumerate(zip(self.sources, self.shares)):
            taken = x if share == remaining_weight else (x * share + self._offset(seed, level, remaining_weight)) // remaining_weight
            out[source] = taken
            x -= taken
            remaining_weight -= share
        return out

    def locate(self, j: int, seed: int) -> tuple[str, int]:
        """Source of the stage's ``j``-th sample and how many earlier samples that source had."""
        remaining_weight, x = _SHARE_DENOMINATOR, j
        for level, (source, share) in enumerate(zip(self.sources, self.shares)):
            if share == remaining_weight:
                return source, x
            offset = self._offset(seed, level, remaining_weight)
            before = (x * share + offset) // remaining_weight
            if ((x + 1) * share + offset) // remaining_weight > before:
                return source, before
            x -= before
            remaining_weight -= share
        raise AssertionError("shares sum to the denominator, so the last level takes everything")

    def _offset(self, seed: int, level: int, modulus: int) -> int:
        return _key(seed, "stage-offset", self.index, level) % modulus


def _integer_shares(mixture: dict[str, float]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Largest-remainder quantisation of the shares (zero shares dropped), summing exactly."""
    items = [(name, w) for name, w in mixture.items() if w > 0]
    raw = [w / sum(w for _, w in items) * _SHARE_DENOMINATOR for _, w in items]
    shares = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - shares[i], reverse=True)[: _SHARE_DENOMINATOR - sum(shares)]:
        shares[i] += 1
    return tuple(name for name, _ in items), tuple(shares)


def plan_stages(recipe: Recipe) -> list[StagePlan]:
    """Resolve token boundaries into whole steps: a step belongs to the stage holding its first token."""
    tokens_per_step = recipe.batch.tokens_per_step
    plans, start_step, first_sample = [], 0, 0
    for i, stage in enumerate(recipe.stages):
        end_step = math.ceil(stage.until_tokens / tokens_per_step)
        if end_step <= start_step:
            raise SmollabError(
                f"stages.{i}.until_tokens: stage '{stage.name}' is shorter than one step of "
                f"{tokens_per_step:,} tokens; move its boundary or shrink batch.tokens_per_step"
            )
        seq_len = stage.seq_len or recipe.batch.seq_len
        sources, shares = _integer_shares(stage.mixture)
        plan = StagePlan(i, stage.name, start_step, end_step, seq_len, tokens_per_step // seq_len, first_sample,
                         sources, shares, stage.rope_theta)
        plans.append(plan)
        first_sample += plan.num_samples
        start_step = end_step
    return plans


@dataclass(frozen=True)
class Sample:
    index: int  # global sample index
    stage: int
    source: str
    position: int  # how many earlier samples this source has served at this seq_len
    epoch: int
    window: int  # which seq_len window of the source's token stream


class MixtureSampler:
    """Maps global sample indices to token windows of the recipe's sources."""

    def __init__(self, recipe: Recipe, streams: dict[str, TokenSource]):
        self.seed = recipe.train.seed
        self.stages = plan_stages(recipe)
        self.streams = streams
        self.total_steps = self.stages[-1].end_step
        self._before: list[dict[tuple[str, int], int]] = []  # samples served before each stage
        served: dict[tuple[str, int], int] = {}
        for plan in self.stages:
            self._before.append(dict(served))
            for source, n in plan.counts(plan.num_samples, self.seed).items():
                served[(source, plan.seq_len)] = served.get((source, plan.seq_len), 0) + n
        self.windows = {}
        for plan in self.stages:
            for source in plan.sources:
                if source not in streams:
                    raise SmollabError(f"source '{source}' has no token shards; run `{tokenize_command(recipe.shards_dir)}` first")
                n = (streams[source].num_tokens - 1) // plan.seq_len
                if n < 1:
                    raise SmollabError(
                        f"data.sources.{source}: {streams[source].num_tokens} tokens cannot fill one sequence of "
                        f"{plan.seq_len}; add documents or lower the sequence length"
                    )
                self.windows[(source, plan.seq_len)] = n

    def stage_of_step(self, step: int) -> StagePlan:
        for plan in self.stages:
            if step < plan.end_step:
                return plan
        raise SmollabError(f"step {step} is past the last stage (training has {self.total_steps} steps)")

    def step_samples(self, step: int) -> list[Sample]:
        plan = self.stage_of_step(step)
        first = (step - plan.start_step) * plan.samples_per_step
        return [self._sample(plan, first + j) for j in range(plan.samples_per_step)]

    def _sample(self, plan: StagePlan, j: int) -> Sample:
        source, within = plan.locate(j, self.seed)
        position = self._before[plan.index].get((source, plan.seq_len), 0) + within
        windows = self.windows[(source, plan.seq_len)]
        epoch, offset = divmod(position, windows)
        window = permute(offset, windows, _key(self.seed, source, plan.seq_len, epoch))
        return Sample(plan.first_sample + j, plan.index, source, position, epoch, window)

    def tokens(self, sample: Sample) -> np.ndarray:
        """The ``seq_len + 1`` tokens of a sample (inputs and shifted labels)."""
        seq_len = self.stages[sample.stage].seq_len
        start = sample.window * seq_len
        return self.streams[sample.source].slice(start, start + seq_len + 1)

    def consumed(self, step: int) -> dict[str, dict[str, float]]:
        """Tokens and epochs served per source after ``step`` steps, and tokens per stage."""
        per_source: dict[str, dict[str, float]] = {}
        per_stage: dict[str, float] = {}
        for plan in self.stages:
            done = min(max(step - plan.start_step, 0), plan.end_step - plan.start_step) * plan.samples_per_step
            per_stage[plan.name] = done * plan.seq_len
            for source, n in plan.counts(done, self.seed).items():
                entry = per_source.setdefault(source, {"tokens": 0, "epochs": 0.0})
                entry["tokens"] += n * plan.seq_len
                entry["epochs"] += n / self.windows[(source, plan.seq_len)]
        return {"sources": per_source, "stages": per_stage}

    def planned_epochs(self) -> dict[str, float]:
        """Epochs each source will have been repeated by the end of training."""
        return {s: v["epochs"] for s, v in self.consumed(self.total_steps)["sources"].items()}
