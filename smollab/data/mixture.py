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

What the sampler reads is a schedule: ordered segments of (stage, steps, shares, the decision
that set them), one per stage for a static recipe. A policy changes the shares from a step on by
splitting the segment there; each segment restarts the Beatty sequences with its own offsets and
continues every source where the earlier segments left it, so a sample stays a pure function of
(seed, global index, schedule) and the schedule, stored as JSON, is all a resume needs.

A segment may also skip steps' worth of samples (the loss-spike guard's rewinds, train/spike.py): a
skip at step ``s`` makes ``s`` and every later step of the segment draw one step further along its
Beatty sequence. Stages keep their steps and token boundaries; the skipped windows are read past,
never trained on, so a skipping stage reads its sources slightly further than planned.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace
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


RECIPE = "recipe"  # the decision label of a stage's shares as the recipe wrote them


@dataclass(frozen=True)
class Segment:
    """Steps ``[start_step, end_step)`` of one stage under one set of integer shares, and what decided them.

    ``ordinal`` counts the stage's earlier segments: segment 0 keeps the stage's Beatty offsets, so
    a static recipe samples exactly as before schedules existed; later ones get offsets of their own.
    ``skips`` lists (sorted, repeats allowed) the steps at which one step of the segment's samples is
    skipped: a skip moves its step and all later ones one step along, so no step straddles segments.
    """

    stage: int
    start_step: int
    end_step: int  # exclusive
    sources: tuple[str, ...]
    shares: tuple[int, ...]  # integer numerators over _SHARE_DENOMINATOR, summing to it
    decision: str
    ordinal: int = 0
    skips: tuple[int, ...] = ()

    @property
    def drawn_steps(self) -> int:
        """Steps' worth of samples the segment reads from its sources: its steps plus its skips."""
        return self.end_step - self.start_step + len(self.skips)

    def data_step(self, step: int) -> int:
        """Which step's worth of the segment's samples training step ``step`` draws."""
        return step - self.start_step + bisect.bisect_right(self.skips, step)

    def skipped_data_steps(self, before_step: int) -> list[int]:
        """The segment's data steps skipped by skips at steps before ``before_step``: the ``i``-th skip, at
        step ``s``, skipped data step ``s - start_step + i`` (each earlier skip moved it one further)."""
        return [s - self.start_step + i for i, s in enumerate(self.skips) if s < before_step]

    def weight(self, source: str) -> float:
        return self.shares[self.sources.index(source)] / _SHARE_DENOMINATOR if source in self.sources else 0.0

    def counts(self, n: int, seed: int) -> dict[str, int]:
        """How many of the segment's first ``n`` samples come from each source (closed form)."""
        out, remaining_weight, x = {}, _SHARE_DENOMINATOR, n
        for level, (source, share) in enumerate(zip(self.sources, self.shares)):
            taken = x if share == remaining_weight else (x * share + self._offset(seed, level, remaining_weight)) // remaining_weight
            out[source] = taken
            x -= taken
            remaining_weight -= share
        return out

    def locate(self, j: int, seed: int) -> tuple[str, int]:
        """Source of the segment's ``j``-th sample and how many earlier samples of the segment that source had."""
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
        if self.ordinal == 0:
            return _key(seed, "stage-offset", self.stage, level) % modulus
        return _key(seed, "segment-offset", self.stage, self.ordinal, level) % modulus

    def to_json(self) -> dict:
        return {"stage": self.stage, "start_step": self.start_step, "end_step": self.end_step,
                "shares": {s: n / _SHARE_DENOMINATOR for s, n in zip(self.sources, self.shares)},
                "numerators": dict(zip(self.sources, self.shares)), "denominator": _SHARE_DENOMINATOR,
                "decision": self.decision, "skips": list(self.skips)}


@dataclass(frozen=True)
class StagePlan:
    """One stage resolved against the batch geometry: step and sample ranges, the recipe's integer shares."""

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

    @property
    def recipe_segment(self) -> Segment:
        """The whole stage under the recipe's shares: the stage's segment in a static schedule."""
        return Segment(self.index, self.start_step, self.end_step, self.sources, self.shares, RECIPE)

    def weight(self, source: str) -> float:
        return self.recipe_segment.weight(source)

    def counts(self, n: int, seed: int) -> dict[str, int]:
        """How many of the stage's first ``n`` samples come from each source under the recipe's shares."""
        return self.recipe_segment.counts(n, seed)


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


def _check_shares(shares: dict[str, float], where: str) -> None:
    for name, share in shares.items():
        if not math.isfinite(share) or share < 0:
            raise SmollabError(f"{where}: share {share} of '{name}' is not a finite number ≥ 0; shares are token fractions in [0, 1]")
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise SmollabError(f"{where}: shares sum to {sum(shares.values()):g}, not 1; renormalise them")


@dataclass(frozen=True)
class Schedule:
    """Ordered segments covering every training step: what the sampler reads.

    A change of shares applies from a step on and never before the latest decision, so the
    past is never rewritten; the recipe's own segments (decision ``recipe``) of later stages are
    plans, not decisions, and a policy may replace them.
    """

    segments: tuple[Segment, ...]

    @classmethod
    def static(cls, stages: list[StagePlan]) -> Schedule:
        return cls(tuple(plan.recipe_segment for plan in stages))

    @property
    def sources(self) -> list[str]:
        """Every source some segment draws from, in order of first appearance."""
        return list(dict.fromkeys(source for segment in self.segments for source in segment.sources))

    def index_of_step(self, step: int) -> int:
        return bisect.bisect_right([segment.start_step for segment in self.segments], step) - 1

    def with_shares(self, from_step: int, sources: tuple[str, ...], shares: tuple[int, ...], decision: str) -> tuple[Schedule, Segment]:
        """This schedule with ``shares`` from ``from_step`` to the end of its stage, and the new segment."""
        if decision == RECIPE:
            raise SmollabError(f"schedule: the decision label '{RECIPE}' is kept for the recipe's own shares; name the rule or policy")
        end = self.segments[-1].end_step
        if not 0 <= from_step < end:
            raise SmollabError(f"schedule: step {from_step} is outside training (steps 0–{end - 1}); "
                               "shares change from a step still to be trained, within its stage")
        decided = [segment for segment in self.segments if segment.decision != RECIPE]
        if decided and from_step < decided[-1].start_step:
            raise SmollabError(f"schedule: shares from step {from_step} would rewrite the past ('{decided[-1].decision}' "
                               f"set them from step {decided[-1].start_step}); decide from step {decided[-1].start_step} on")
        k = self.index_of_step(from_step)
        old = self.segments[k]
        if from_step == old.start_step:
            head, new = (), replace(old, sources=sources, shares=shares, decision=decision)
        else:
            head = (replace(old, end_step=from_step, skips=tuple(s for s in old.skips if s < from_step)),)
            new = Segment(old.stage, from_step, old.end_step, sources, shares, decision, old.ordinal + 1,
                          tuple(s for s in old.skips if s >= from_step))
        return Schedule(self.segments[:k] + head + (new,) + self.segments[k + 1:]), new

    def with_skip(self, step: int) -> Schedule:
        """This schedule with one more step of samples skipped at ``step``: ``step`` draws what would have come next."""
        end = self.segments[-1].end_step
        if not 0 <= step < end:
            raise SmollabError(f"schedule: cannot skip the samples of step {step}, outside training (steps 0–{end - 1})")
        k = self.index_of_step(step)
        segment = replace(self.segments[k], skips=tuple(sorted(self.segments[k].skips + (step,))))
        return Schedule(self.segments[:k] + (segment,) + self.segments[k + 1:])

    def to_json(self) -> list[dict]:
        """Plain dicts: the exact integer numerators (what sampling uses) and the shares as floats (for reading)."""
        return [segment.to_json() for segment in self.segments]

    @classmethod
    def from_json(cls, data: list[dict], where: str = "schedule") -> Schedule:
        """The schedule ``to_json`` wrote; the sampler then checks that it fits the recipe's stages."""
        segments, per_stage = [], {}
        try:
            for k, entry in enumerate(data):
                numerators = {str(s): int(n) for s, n in entry["numerators"].items()}
                if entry["denominator"] != _SHARE_DENOMINATOR or sum(numerators.values()) != _SHARE_DENOMINATOR or min(numerators.values()) < 1:
                    raise SmollabError(f"{where}: segment {k}'s numerators {numerators} are not positive parts of "
                                       f"{_SHARE_DENOMINATOR} (denominator {entry['denominator']}); it was not written by this smollab")
                stage = int(entry["stage"])
                segments.append(Segment(stage, int(entry["start_step"]), int(entry["end_step"]), tuple(numerators),
                                        tuple(numerators.values()), str(entry["decision"]), per_stage.get(stage, 0),
                                        tuple(int(s) for s in entry.get("skips", ()))))
                per_stage[stage] = per_stage.get(stage, 0) + 1
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SmollabError(f"{where}: malformed segment ({type(err).__name__}: {err}); "
                               "expected the list Schedule.to_json() writes") from None
        if not segments:
            raise SmollabError(f"{where}: no segments; expected the list Schedule.to_json() writes")
        return cls(tuple(segments))


@dataclass(frozen=True)
class Sample:
    index: int  # global sample index: the training slot (a skip gives a slot the samples of a later one)
    stage: int
    source: str
    position: int  # how many earlier samples this source has served at this seq_len
    epoch: int
    window: int  # which seq_len window of the source's token stream


class MixtureSampler:
    """Maps global sample indices to token windows of the recipe's sources, under a schedule.

    ``schedule`` is the realised one (e.g. ``Schedule.from_json(meta["schedule"])``); None is the
    recipe's static schedule.
    """

    def __init__(self, recipe: Recipe, streams: dict[str, TokenSource], schedule: Schedule | None = None):
        self.seed = recipe.train.seed
        self.stages = plan_stages(recipe)
        self.streams = streams
        self.shards_dir = recipe.shards_dir
        self.total_steps = self.stages[-1].end_step
        self._use(schedule or Schedule.static(self.stages))

    def _use(self, schedule: Schedule) -> None:
        """Index ``schedule``: windows per (source, seq_len) and samples served before each segment.

        Everything is checked before anything is replaced, so a refused schedule leaves the sampler as it was.
        """
        self._check_fits(schedule)
        windows = {}
        for segment in schedule.segments:
            seq_len = self.stages[segment.stage].seq_len
            for source in segment.sources:
                if (source, seq_len) not in windows:
                    windows[(source, seq_len)] = self._count_windows(source, seq_len)
        before, served = [], {}
        for segment in schedule.segments:
            seq_len = self.stages[segment.stage].seq_len
            before.append(dict(served))
            for source, n in segment.counts(self._num_samples(segment), self.seed).items():
                served[(source, seq_len)] = served.get((source, seq_len), 0) + n
        self.schedule, self.windows, self._before = schedule, windows, before

    def _check_fits(self, schedule: Schedule) -> None:
        """Segments run back to back from step 0 to the last, each inside the stage it names."""
        step, spans = 0, ", ".join(f"{p.name} {p.start_step}–{p.end_step}" for p in self.stages)
        for k, segment in enumerate(schedule.segments):
            plan = self.stages[segment.stage] if 0 <= segment.stage < len(self.stages) else None
            if plan is None or segment.start_step != step or not plan.start_step <= step < segment.end_step <= plan.end_step:
                raise SmollabError(f"schedule: segment {k} (stage {segment.stage}, steps {segment.start_step}–{segment.end_step}) "
                                   f"does not fit the recipe's stages ({spans}); use the recipe the schedule was made with")
            if list(segment.skips) != sorted(segment.skips) or any(not segment.start_step <= s < segment.end_step for s in segment.skips):
                raise SmollabError(f"schedule: segment {k} skips steps {list(segment.skips)}, not sorted steps of its own "
                                   f"({segment.start_step}–{segment.end_step - 1}); it was not written by this smollab")
            step = segment.end_step
        if step != self.total_steps:
            raise SmollabError(f"schedule: its segments end at step {step}, the recipe's stages at {self.total_steps}; "
                               "use the recipe the schedule was made with")

    def _count_windows(self, source: str, seq_len: int) -> int:
        if source not in self.streams:
            raise SmollabError(f"source '{source}' has no token shards; run `{tokenize_command(self.shards_dir)}` first")
        n = (self.streams[source].num_tokens - 1) // seq_len
        if n < 1:
            raise SmollabError(
                f"data.sources.{source}: {self.streams[source].num_tokens} tokens cannot fill one sequence of "
                f"{seq_len}; add documents or lower the sequence length"
            )
        return n

    def _num_samples(self, segment: Segment) -> int:
        """Samples the segment reads from its sources, skipped ones included."""
        return segment.drawn_steps * self.stages[segment.stage].samples_per_step

    def use_schedule(self, schedule: Schedule) -> None:
        """Sample under ``schedule`` from now on (a rewind to a checkpoint's schedule, plus a skip)."""
        self._use(schedule)

    def set_shares(self, from_step: int, shares: dict[str, float], decision: str) -> Segment:
        """Draw from ``shares`` from ``from_step`` to the end of its stage; returns the new segment.

        Any source with shards may enter; each source continues at the position its earlier
        segments left it, so no sample is repeated or skipped by the change.
        """
        _check_shares(shares, f"schedule: shares from step {from_step} ('{decision}')")
        schedule, segment = self.schedule.with_shares(from_step, *_integer_shares(shares), decision)
        self._use(schedule)
        return segment

    def stage_of_step(self, step: int) -> StagePlan:
        for plan in self.stages:
            if step < plan.end_step:
                return plan
        raise SmollabError(f"step {step} is past the last stage (training has {self.total_steps} steps)")

    def segment_of_step(self, step: int) -> Segment:
        self.stage_of_step(step)
        return self.schedule.segments[self.schedule.index_of_step(step)]

    def step_samples(self, step: int) -> list[Sample]:
        self.stage_of_step(step)
        k = self.schedule.index_of_step(step)
        segment = self.schedule.segments[k]
        plan = self.stages[segment.stage]
        first = segment.data_step(step) * plan.samples_per_step
        slot = plan.first_sample + (step - plan.start_step) * plan.samples_per_step
        return [self._sample(k, first + j, slot + j) for j in range(plan.samples_per_step)]

    def _sample(self, k: int, j: int, index: int) -> Sample:
        segment = self.schedule.segments[k]
        plan = self.stages[segment.stage]
        source, within = segment.locate(j, self.seed)
        position = self._before[k].get((source, plan.seq_len), 0) + within
        windows = self.windows[(source, plan.seq_len)]
        epoch, offset = divmod(position, windows)
        window = permute(offset, windows, _key(self.seed, source, plan.seq_len, epoch))
        return Sample(index, plan.index, source, position, epoch, window)

    def tokens(self, sample: Sample) -> np.ndarray:
        """The ``seq_len + 1`` tokens of a sample (inputs and shifted labels)."""
        seq_len = self.stages[sample.stage].seq_len
        start = sample.window * seq_len
        return self.streams[sample.source].slice(start, start + seq_len + 1)

    def consumed(self, step: int) -> dict[str, dict[str, float]]:
        """Tokens trained and epochs read per source after ``step`` steps, and tokens per stage.

        Skipped samples count towards epochs (the source was read past them) but not tokens (never trained on).
        """
        per_source: dict[str, dict[str, float]] = {}
        per_stage: dict[str, float] = {}
        for segment in self.schedule.segments:
            plan, n = self.stages[segment.stage], self.stages[segment.stage].samples_per_step
            done = min(max(step - segment.start_step, 0), segment.end_step - segment.start_step)
            skipped = segment.skipped_data_steps(segment.start_step + done)
            per_stage[plan.name] = per_stage.get(plan.name, 0) + done * n * plan.seq_len
            drawn = segment.counts((done + len(skipped)) * n, self.seed)
            for source, count in drawn.items():
                unseen = sum(segment.counts((d + 1) * n, self.seed)[source] - segment.counts(d * n, self.seed)[source] for d in skipped)
                entry = per_source.setdefault(source, {"tokens": 0, "epochs": 0.0})
                entry["tokens"] += (count - unseen) * plan.seq_len
                entry["epochs"] += count / self.windows[(source, plan.seq_len)]
        return {"sources": per_source, "stages": per_stage}

    def planned_epochs(self) -> dict[str, float]:
        """Epochs each source will have been repeated by the end of training, under the current schedule."""
        return {s: v["epochs"] for s, v in self.consumed(self.total_steps)["sources"].items()}
