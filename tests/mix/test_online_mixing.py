"""Online data mixing: the EXP3 bandit shifts share to sources with loss left to learn, inside bounds, resumably."""

import json
import math

import pytest

from smollab.errors import SmollabError
from smollab.mix.config import OdmPolicy
from smollab.mix.odm import OnlineMixer, exploration_rate

SOURCES = ["web", "code", "math"]
START = {"web": 0.5, "code": 0.3, "math": 0.2}


def losses(step: int) -> dict[str, float]:
    """Falling losses; web's stays twice as far from zero as the others'."""
    decay = 3 * math.exp(-step / 300) + 0.01 * math.sin(step)
    return {"web": 4.0 + decay, "code": 2.0 + decay, "math": 2.0 + decay}


def run(mixer: OnlineMixer, steps: range) -> list[dict]:
    decisions = []
    for step in steps:
        mixer.observe(losses(step))
        if step % mixer.config.every_steps == 0:
            decisions.append(mixer.decide())
    return decisions


def mixer(**config) -> OnlineMixer:
    return OnlineMixer(OdmPolicy(policy="odm", every_steps=10, **config), SOURCES, START)


def test_share_moves_to_the_source_whose_loss_stays_high_and_settles_proportional_to_losses():
    decisions = run(mixer(), range(1, 4001))
    assert decisions[-1]["web"] == pytest.approx(0.5, abs=0.01)  # 4 / (4 + 2 + 2)
    assert decisions[-1]["code"] == pytest.approx(0.25, abs=0.01)
    assert decisions[50]["web"] > decisions[3]["web"]


def test_shares_never_leave_their_bounds_over_many_updates():
    bounds = {"web": (0.1, 0.42), "math": (0.3, 0.6)}
    decisions = run(mixer(bounds=bounds), range(1, 4001))
    for shares in decisions:
        assert math.isclose(math.fsum(shares.values()), 1.0, abs_tol=1e-12)
        assert all(low <= shares[name] <= high for name, (low, high) in bounds.items())
    assert decisions[-1]["web"] == 0.42 and decisions[-1]["math"] == 0.3


def test_a_bandit_restored_from_json_continues_bit_identically():
    straight = mixer(smoothing=0.8)
    expected = run(straight, range(1, 501))
    interrupted = mixer(smoothing=0.8)
    before = run(interrupted, range(1, 137))  # mid-segment: the EMA and the observed list carry over
    restored = mixer(smoothing=0.8)
    restored.load_state_dict(json.loads(json.dumps(interrupted.state_dict())))
    assert before + run(restored, range(137, 501)) == expected
    assert json.dumps(restored.state_dict()) == json.dumps(straight.state_dict())


def test_a_state_over_other_sources_is_refused_in_one_line():
    state = mixer().state_dict()
    other = OnlineMixer(OdmPolicy(policy="odm", every_steps=10), ["web", "code"], {"web": 0.5, "code": 0.5})
    with pytest.raises(SmollabError, match="the ODM state is over sources"):
        other.load_state_dict(state)


def test_exploration_decays_and_floors_every_share():
    rates = [exploration_rate(3, t) for t in range(0, 2001)]
    assert rates[:4] == [1 / 3] * 4 and rates[100] == pytest.approx(math.sqrt(math.log(3) / 300))
    assert all(later < earlier for earlier, later in zip(rates[4:], rates[5:]))
    bandit = OnlineMixer(OdmPolicy(policy="odm", every_steps=1), SOURCES, START)
    floors = []
    for _ in range(2000):
        bandit.observe({"web": 10.0, "code": 0.01, "math": 0.01})
        shares = bandit.decide()
        assert min(shares.values()) >= exploration_rate(3, bandit.rounds) - 1e-12
        floors.append(min(shares.values()))
    assert floors[-1] < floors[10] / 5
