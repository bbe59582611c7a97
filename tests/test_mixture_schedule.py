"""The mixture schedule as data: a static recipe samples as before, changed shares are realised, the JSON replays."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from smollab.data.mixture import MixtureSampler, Schedule
from smollab.data.shards import load_streams
from smollab.errors import SmollabError
from smollab.recipe import load_recipe, validate_tree
from tests.conftest import recipe_tree

LONG_STAGES = [
    {"name": "one", "until_tokens": 40 * 1024, "mixture": {"web": 0.7, "code": 0.3}},
    {"name": "two", "until_tokens": 60 * 1024, "mixture": {"web": 0.4, "code": 0.2, "math": 0.4}},
]


class ArrayTokens:
    """A token source held in memory: the fingerprint below pins the sampler's arithmetic, not a tokenizer's output."""

    def __init__(self, num_tokens: int):
        self.num_tokens = num_tokens
        self.array = np.arange(num_tokens, dtype=np.int64)

    def slice(self, start: int, stop: int) -> np.ndarray:
        return self.array[start:stop]


@pytest.fixture
def sampler(write_recipe):
    def make(schedule: Schedule | None = None) -> MixtureSampler:
        recipe = load_recipe(write_recipe(stages=LONG_STAGES))
        return MixtureSampler(recipe, load_streams(recipe.shards_dir, ["web", "code", "math"]), schedule)

    return make


def every_sample(s: MixtureSampler, steps=None) -> list:
    return [x for step in (steps if steps is not None else range(s.total_steps)) for x in s.step_samples(step)]


def test_a_static_recipe_samples_exactly_as_before_schedules_existed():
    # recorded with the sampler as it was before schedules (git 884b792): index, stage, source, position, epoch,
    # window of every sample of two stages (a boundary inside a step, a second seq_len, several epochs per source)
    tree = recipe_tree(Path("unused"), Path("unused/shards"), Path("unused/tokenizer"), stages=[
        {"name": "one", "until_tokens": 10 * 1024 + 100, "mixture": {"web": 0.55, "code": 0.3, "math": 0.15}},
        {"name": "two", "until_tokens": 24 * 1024, "mixture": {"web": 0.1, "code": 0.2, "math": 0.7}, "seq_len": 128}])
    streams = {"web": ArrayTokens(64 * 40 + 1), "code": ArrayTokens(64 * 23 + 5), "math": ArrayTokens(64 * 11 + 1)}
    s = MixtureSampler(validate_tree(tree), streams)
    digest = hashlib.sha256()
    for x in every_sample(s):
        digest.update(f"{x.index},{x.stage},{x.source},{x.position},{x.epoch},{x.window};".encode())
    assert digest.hexdigest() == "ecba9bd77dba6da420be9b069ef6457cbc9a84d9f79c20431dfbf6bcbc9ba404"
    assert [(seg.stage, seg.start_step, seg.end_step, seg.decision) for seg in s.schedule.segments] == [
        (0, 0, 11, "recipe"), (1, 11, 24, "recipe")]


def test_new_shares_mid_stage_are_realised_and_every_source_continues_where_it_was(sampler):
    static, s = sampler(), sampler()
    # math is not in stage one's recipe mixture: a source with shards may enter at a decision
    segment = s.set_shares(13, {"web": 0.2, "code": 0.3, "math": 0.5}, decision="math_lags")
    assert [(seg.start_step, seg.end_step, seg.decision) for seg in s.schedule.segments] == [
        (0, 13, "recipe"), (13, 40, "math_lags"), (40, 60, "recipe")]
    assert every_sample(s, range(13)) == every_sample(static, range(13))  # the past is unchanged

    new = every_sample(s, range(13, 40))
    realised = Counter(x.source for x in new)
    assert realised == segment.counts(len(new), s.seed)  # closed form = what step_samples serves
    for source, share in {"web": 0.2, "code": 0.3, "math": 0.5}.items():
        assert abs(realised[source] - round(share * len(new))) <= len(segment.sources)
    # stage two keeps its own shares and interleaving: the change ended at its stage's end
    assert [x.source for x in every_sample(s, range(40, 60))] == [x.source for x in every_sample(static, range(40, 60))]

    positions = {}
    for x in every_sample(s):
        positions.setdefault(x.source, []).append(x.position)
    for source, seen in positions.items():
        assert seen == list(range(len(seen))), source  # no position skipped or served twice
    consumed = s.consumed(s.total_steps)["sources"]
    assert {source: consumed[source]["tokens"] for source in positions} == {
        source: 64 * len(seen) for source, seen in positions.items()}


def test_a_sampler_rebuilt_from_the_schedule_json_serves_the_same_samples(sampler):
    s = sampler()
    s.set_shares(7, {"web": 0.5, "code": 0.5}, decision="odm")
    s.set_shares(40, {"web": 0.6, "code": 0.1, "math": 0.3}, decision="mmlu_stalls")  # replaces stage two's recipe segment
    stored = json.loads(json.dumps(s.schedule.to_json()))
    assert [(e["start_step"], e["end_step"], e["decision"], e["shares"]) for e in stored] == [
        (0, 7, "recipe", {"web": pytest.approx(0.7), "code": pytest.approx(0.3)}),
        (7, 40, "odm", {"web": 0.5, "code": 0.5}),
        (40, 60, "mmlu_stalls", {"web": pytest.approx(0.6), "code": pytest.approx(0.1), "math": pytest.approx(0.3)})]
    assert all(sum(e["numerators"].values()) == e["denominator"] for e in stored)

    rebuilt = sampler(Schedule.from_json(stored))
    assert rebuilt.schedule == s.schedule
    assert every_sample(rebuilt) == every_sample(s)
    assert [rebuilt.tokens(x).tolist() for x in rebuilt.step_samples(45)] == [s.tokens(x).tolist() for x in s.step_samples(45)]
    assert rebuilt.consumed(50) == s.consumed(50) and rebuilt.planned_epochs() == s.planned_epochs()


@pytest.mark.parametrize(("from_step", "shares", "decision", "message"), [
    (9, {"web": 1.0}, "late", r"shares from step 9 would rewrite the past \('odm' set them from step 10\); decide from step 10 on"),
    (60, {"web": 1.0}, "late", r"step 60 is outside training \(steps 0–59\)"),
    (20, {"web": 0.5, "wiki": 0.5}, "late", r"source 'wiki' has no token shards; run `smollab tokenize"),
    (20, {"web": 0.5, "code": 0.4}, "late", r"shares sum to 0.9, not 1; renormalise them"),
    (20, {"web": 1.0}, "recipe", r"the decision label 'recipe' is kept for the recipe's own shares"),
])
def test_a_change_that_rewrites_the_past_or_leaves_training_is_refused_in_one_line(sampler, from_step, shares, decision, message):
    s = sampler()
    s.set_shares(10, {"web": 0.5, "code": 0.5}, decision="odm")
    before = (s.schedule, every_sample(s, range(8, 12)))
    with pytest.raises(SmollabError, match=message) as err:
        s.set_shares(from_step, shares, decision)
    assert "\n" not in str(err.value)
    assert (s.schedule, every_sample(s, range(8, 12))) == before  # a refused change leaves the sampler as it was


def test_a_schedule_that_does_not_fit_the_recipe_is_refused(sampler, write_recipe):
    stored = sampler().schedule.to_json()
    stored[0]["end_step"], stored[1]["start_step"] = 45, 45  # stage one would run into stage two
    with pytest.raises(SmollabError, match=r"schedule: segment 0 \(stage 0, steps 0–45\) does not fit the recipe's stages "
                                           r"\(one 0–40, two 40–60\)"):
        sampler(Schedule.from_json(stored))
    stored = sampler().schedule.to_json()
    stored[1]["numerators"]["web"] += 1
    with pytest.raises(SmollabError, match="checkpoint meta.json: segment 1's numerators .* are not positive parts of 16777216"):
        Schedule.from_json(stored, where="checkpoint meta.json")
