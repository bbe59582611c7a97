import pytest

from smollab.data.mixture import plan_stages
from smollab.recipe import DecayConfig, ScheduleConfig, load_recipe
from smollab.train.schedule import WSD
from tests.conftest import REPO


def test_warmup_is_linear_to_the_peak_then_constant():
    s = WSD(ScheduleConfig(warmup_steps=10, decay=DecayConfig(fraction=0.2)), peak_lr=1.0, total_steps=100)
    assert [s.lr(i) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert {s.lr(i) for i in range(10, 80)} == {1.0}
    assert [s.phase(i) for i in (0, 9, 10, 79, 80, 99)] == ["warmup", "warmup", "stable", "stable", "decay", "decay"]


# Peak 1.0, 10 steps, warmup 2, decay fraction 0.3: warmup steps 0-1 give 1/2, 2/2; the decay is the last
# round(0.3 × 10) = 3 steps (7, 8, 9) at progress 1/3, 2/3, 3/3, so the last step lands on the final LR.
#   linear:  1 - p              → 2/3, 1/3, 0
#   1-sqrt:  1 - √p             → 1 - 0.57735026919 = 0.42264973081, 1 - 0.81649658093 = 0.18350341907, 0
#   cosine:  (1 + cos πp) / 2   → (1 + 1/2) / 2 = 0.75, (1 - 1/2) / 2 = 0.25, 0
# With a final LR of 0.1 the remaining share scales 1.0 - 0.1 = 0.9: linear → 0.1 + 0.6, 0.1 + 0.3, 0.1;
# cosine → 0.1 + 0.675, 0.1 + 0.225, 0.1.
WARMUP_AND_STABLE = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("shape, to, decay", [
    ("linear", 0.0, [0.6666666666666667, 0.3333333333333333, 0.0]),
    ("1-sqrt", 0.0, [0.42264973081037427, 0.18350341907227397, 0.0]),
    ("cosine", 0.0, [0.75, 0.25, 0.0]),
    ("linear", 0.1, [0.7, 0.4, 0.1]),
    ("cosine", 0.1, [0.775, 0.325, 0.1]),
])
def test_decay_spans_the_last_fraction_with_its_shape_and_ends_at_the_final_lr(shape, to, decay):
    s = WSD(ScheduleConfig(warmup_steps=2, decay=DecayConfig(fraction=0.3, shape=shape, to=to)), peak_lr=1.0,
            total_steps=10)
    assert [s.lr(step) for step in range(10)] == pytest.approx(WARMUP_AND_STABLE + decay, abs=1e-12)
    assert [s.phase(step) for step in range(10)] == ["warmup"] * 2 + ["stable"] * 5 + ["decay"] * 3


def test_smollm2_135m_recipe_decays_linearly_over_its_last_400k_of_2m_steps():
    # 2,097,152,000,000 tokens / 1,048,576 per step = 2,000,000 steps; 20% linear decay from 3e-3 to 0 starts at
    # step 1,600,000; warmup reaches 3e-3 at step 1,999 (3e-3 / 2000 = 1.5e-6 per step).
    recipe = load_recipe(REPO / "recipes" / "smollm2-135m.yaml")
    s = WSD(recipe.schedule, recipe.optim.lr, plan_stages(recipe)[-1].end_step)
    assert (s.total_steps, s.warmup_steps, s.decay_start) == (2_000_000, 2000, 1_600_000)
    expected = {
        0: 1.5e-6, 999: 1.5e-3, 1999: 3e-3, 2000: 3e-3, 1_599_999: 3e-3,
        1_600_000: 2.9999925e-3,  # 3e-3 × (1 - 1/400,000)
        1_799_999: 1.5e-3,        # progress 200,000 / 400,000
        1_999_999: 0.0,
    }
    assert {step: s.lr(step) for step in expected} == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert [s.phase(step) for step in (1999, 2000, 1_599_999, 1_600_000)] == ["warmup", "stable", "stable", "decay"]


def test_smollm2_1p7b_decay_starts_where_the_paper_config_does():
    # nanotron: 524,000 of ~5.24M steps decay, i.e. the last 10%
    s = WSD(ScheduleConfig(warmup_steps=2000, decay=DecayConfig(fraction=0.1)), 5e-4, total_steps=5_240_000)
    assert s.decay_start == 4_716_000 and s.lr(4_715_999) == 5e-4 and s.lr(5_239_999) == 0.0
