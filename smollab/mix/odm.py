"""Online data mixing inside a stage: the EXP3 bandit of Albalak et al. 2023 (arXiv 2312.02406).

The arms are the stage's sources and an arm's reward is its smoothed training loss (EMA with
``smoothing``): a high loss means more left to learn there. ODM draws one source per batch from π;
smollab's sampler takes shares, so here one bandit round is one segment of ``every_steps`` steps:
π becomes the next segment's shares (fitted into ``bounds``), deterministic and RNG-free, and the
update is importance-weighted by the share each observed source actually had. Rewards are divided
by the largest smoothed loss so they lie in (0, 1] as EXP3 assumes; that keeps a round's update
below 1 whatever the loss scale, so shares do not swing between bounds early in training, where
losses are large. With every source observed every round, the fixed point is shares proportional
to the smoothed losses (wherever exploration and bounds allow). The state is plain JSON, whose
floats round-trip exactly, so a resumed run makes the same decisions bit for bit.
"""

from __future__ import annotations

import math

from smollab.errors import SmollabError
from smollab.mix.config import OdmPolicy
from smollab.mix.shares import within_bounds


def exploration_rate(arms: int, rounds: int) -> float:
    """ε_t = min(1/K, sqrt(ln K / (K·t))), with ε_0 = 1/K: every arm keeps at least ε_t of the share."""
    if rounds == 0:
        return 1.0 / arms
    return min(1.0 / arms, math.sqrt(math.log(arms) / (arms * rounds)))


class OnlineMixer:
    """The bandit of one stage: ``observe`` the loss per source every step, ``decide`` every ``every_steps``."""

    def __init__(self, config: OdmPolicy, sources: list[str], initial_shares: dict[str, float]):
        self.config = config
        self.sources = list(sources)
        self.rounds = 0
        self.weights = {s: 0.0 for s in self.sources}
        self.losses: dict[str, float | None] = {s: None for s in self.sources}
        self.observed: list[str] = []
        self.shares = {s: float(initial_shares.get(s, 0.0)) for s in self.sources}

    def observe(self, losses_per_source: dict[str, float]) -> None:
        """Fold one step's training loss per source into its EMA; sources absent or not finite are skipped."""
        alpha = self.config.smoothing
        for source in self.sources:
            loss = losses_per_source.get(source)
            if not isinstance(loss, (int, float)) or not math.isfinite(loss):
                continue
            previous = self.losses[source]
            self.losses[source] = float(loss) if previous is None else alpha * previous + (1 - alpha) * loss
            if source not in self.observed:
                self.observed.append(source)

    def decide(self) -> dict[str, float]:
        """End the round: update the weights from the observed sources and return the next segment's shares."""
        self.rounds += 1
        arms = len(self.sources)
        rewarded = [s for s in self.sources if s in self.observed and self.shares[s] > 0]
        top = max((self.losses[s] for s in rewarded), default=0.0)
        if top > 0:
            step = exploration_rate(arms, self.rounds - 1)
            for source in rewarded:
                self.weights[source] += step * (self.losses[source] / top) / self.shares[source]
        epsilon = exploration_rate(arms, self.rounds)
        peak = max(self.weights.values())
        exp = {s: math.exp(w - peak) for s, w in self.weights.items()}
        total = math.fsum(exp.values())
        policy = {s: (1 - arms * epsilon) * e / total + epsilon for s, e in exp.items()}
        self.shares = within_bounds(policy, self.config.bounds)
        self.observed = []
        return dict(self.shares)

    def state_dict(self) -> dict:
        """Everything the next decision depends on, as JSON-able values."""
        return {"sources": list(self.sources), "rounds": self.rounds, "weights": dict(self.weights),
                "losses": dict(self.losses), "observed": list(self.observed), "shares": dict(self.shares)}

    def load_state_dict(self, state: dict) -> None:
        if state["sources"] != self.sources:
            raise SmollabError(f"checkpoint: the ODM state is over sources {state['sources']}, but the stage mixes "
                               f"{self.sources}; resume with the recipe the run was started with")
        self.rounds = int(state["rounds"])
        self.weights = {s: float(state["weights"][s]) for s in self.sources}
        self.losses = {s: None if state["losses"][s] is None else float(state["losses"][s]) for s in self.sources}
        self.observed = list(state["observed"])
        self.shares = {s: float(state["shares"][s]) for s in self.sources}
