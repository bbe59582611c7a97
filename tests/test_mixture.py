import re
from collections import Counter

import pytest

from smollab.data.mixture import MixtureSampler, permute
from smollab.data.shards import load_streams
from smollab.data.tokenize import tokenize_recipe
from smollab.recipe import load_recipe
from tests.conftest import smollab


@pytest.fixture
def sampler(write_recipe):
    def make(**sections) -> MixtureSampler:
        recipe = load_recipe(write_recipe(**sections))
        return MixtureSampler(recipe, load_streams(recipe.shards_dir, ["web", "code", "math"]))

    return make


def test_realised_token_shares_are_within_two_percent_of_the_weights(sampler):
    long_stages = [
        {"name": "one", "until_tokens": 200 * 1024, "mixture": {"web": 0.55, "code": 0.3, "math": 0.15}},
        {"name": "two", "until_tokens": 300 * 1024, "mixture": {"web": 0.1, "code": 0.2, "math": 0.7}},
    ]
    s = sampler(stages=long_stages)
    for plan in s.stages:
        tokens = Counter()
        for step in range(plan.start_step, plan.end_step):
            for sample in s.step_samples(step):
                tokens[sample.source] += plan.seq_len
        total = sum(tokens.values())
        for source in plan.sources:
            assert abs(tokens[source] / total - plan.weight(source)) <= 0.02
        # and the sampler's own accounting agrees with what was served
        before = s.consumed(plan.start_step)["sources"]
        after = s.consumed(plan.end_step)["sources"]
        for source in plan.sources:
            assert after[source]["tokens"] - before.get(source, {"tokens": 0})["tokens"] == tokens[source]


def test_stage_boundary_is_never_crossed(sampler):
    # a boundary that is not a multiple of tokens_per_step: the step holding it belongs to the stage it starts in
    s = sampler(stages=[
        {"name": "one", "until_tokens": 10 * 1024 + 100, "mixture": {"web": 1.0}},
        {"name": "two", "until_tokens": 20 * 1024, "mixture": {"code": 0.5, "math": 0.5}},
    ])
    assert [(p.start_step, p.end_step) for p in s.stages] == [(0, 11), (11, 20)]
    for step in range(s.total_steps):
        stage = s.stage_of_step(step)
        for sample in s.step_samples(step):
            assert sample.stage == stage.index and sample.source in stage.sources
            assert stage.first_sample <= sample.index < stage.first_sample + stage.num_samples


def test_same_seed_and_index_give_the_same_sample_and_a_new_seed_reshuffles(sampler):
    a, b = sampler(), sampler()
    assert [a.step_samples(5), a.tokens(a.step_samples(5)[0]).tolist()] == [b.step_samples(5), b.tokens(b.step_samples(5)[0]).tolist()]
    c = sampler(train={"seed": 4})
    assert [x.window for x in c.step_samples(5)] != [x.window for x in a.step_samples(5)]


def test_a_source_is_read_without_repeats_within_an_epoch(sampler):
    s = sampler(stages=[{"name": "one", "until_tokens": 400 * 1024, "mixture": {"web": 0.5, "code": 0.5}}])
    windows = s.windows[("web", 64)]
    seen = [(x.epoch, x.window) for st in range(s.total_steps) for x in s.step_samples(st) if x.source == "web"]
    first_epoch = [w for e, w in seen if e == 0]
    assert len(first_epoch) == min(windows, len(seen)) and len(set(first_epoch)) == len(first_epoch)
    assert s.planned_epochs()["web"] == pytest.approx(len(seen) / windows)


def test_a_source_repeated_beyond_its_max_epochs_is_warned_and_one_within_it_is_not(write_recipe, tmp_path):
    # 4 steps of 16 samples × 64 tokens, half from each source: 2048 tokens of a 3-question source (~550 tokens,
    # so over its max_epochs of 2) and 2048 of a 200-question one (well under the default 4)
    gsm8k = {"bundled": "math_gsm8k_train", "template": "Question: {question}\nAnswer: {answer}"}
    path = write_recipe(
        data={"sources": {"few": {**gsm8k, "limit": 3, "max_epochs": 2}, "many": {**gsm8k, "limit": 200}},
              "shards_dir": str(tmp_path / "shards")},
        stages=[{"name": "one", "until_tokens": 4 * 1024, "mixture": {"few": 0.5, "many": 0.5}}])
    tokenize_recipe(load_recipe(path), workers=1)
    # 32 samples over the few source's distinct 65-token windows (a window starts every 64 tokens)
    few_epochs = 32 / ((load_streams(tmp_path / "shards", ["few"])["few"].num_tokens - 1) // 64)
    assert few_epochs > 2 + 1  # past max_epochs by a margin the warning's rounding shows

    stderr = " ".join(smollab("train", str(path)).stderr.split())  # rich wraps long lines at the terminal width
    warning = re.search(r"warning: source '(\w+)' will be repeated ([\d.]+) epochs, more than "
                        r"data\.sources\.(\w+)\.max_epochs = ([\d.]+)", stderr)
    assert warning, stderr
    source, epochs, field_source, limit = warning.groups()
    assert (source, field_source, limit) == ("few", "few", "2")
    assert float(epochs) == pytest.approx(few_epochs, abs=0.05)  # printed to one decimal
    assert stderr.count("warning: source") == 1 and "'many'" not in stderr


def test_feistel_permutation_is_a_bijection():
    for size in (1, 2, 3, 17, 1000, 4097):
        assert sorted(permute(i, size, key=99) for i in range(size)) == list(range(size))
