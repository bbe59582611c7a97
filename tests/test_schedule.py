import math

import pytest

from smollab.recipe import DecayConfig, ScheduleConfig
from smollab.train.schedule import WSD


def wsd(shape: str, to: float = 0.0) -> WSD:
    return WSD(ScheduleConfig(warmup_steps=10, decay=DecayConfig(fraction=0.2, shape=shape, to=to)), peak_lr=1.0,
               total_steps=100)


def test_warmup_is_linear_to_the_peak_then_constant():
    s = wsd("linear")
    assert [s.lr(i) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert {s.lr(i) for i in range(10, 80)} == {1.0}
    assert [s.phase(i) for i in (0, 9, 10, 79, 80, 99)] == ["warmup", "warmup", "stable", "stable", "decay", "decay"]


@pytest.mark.parametrize("shape, expected", [
    ("linear", lambda p: 1 - p),
    ("1-sqrt", lambda p: 1 - math.sqrt(p)),
    ("cosine", lambda p: 0.5 * (1 + math.cos(math.pi * p))),
])
def test_decay_spans_the_last_fraction_with_its_shape_and_ends_at_the_final_lr(shape, expected):
    s = wsd(shape, to=0.1)
    for step in range(80, 100):
        progress = (step - 80 + 1) / 20
        assert s.lr(step) == pytest.approx(0.1 + 0.9 * expected(progress))
    assert s.lr(99) == pytest.approx(0.1)


def test_smollm2_1p7b_decay_starts_where_the_paper_config_does():
    # nanotron: 524,000 of ~5.24M steps decay, i.e. the last 10%
    s = WSD(ScheduleConfig(warmup_steps=2000, decay=DecayConfig(fraction=0.1)), 5e-4, total_steps=5_240_000)
    assert s.decay_start == 4_716_000 and s.lr(4_715_999) == 5e-4 and s.lr(5_239_999) == 0.0
