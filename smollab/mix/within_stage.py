"""Online data mixing in the loop: the bandit of the stage being trained, and when it decides.

A stage whose ``rebalance`` is ``policy: odm`` gets one ``OnlineMixer`` when training enters it,
starting from the stage's shares. Every step's training loss per source is observed; every
``every_steps`` steps after the stage's first, the bandit's shares become a new segment from that
step on. The bandit is the only state here and it is JSON, saved in each checkpoint: a checkpoint at
step ``t`` holds the bandit after step ``t - 1``, so a run resumed there takes the decision due at
``t`` (if any) from exactly the same state, and every earlier decision comes back from the stored
schedule. Losses are reduced over ranks before they are observed, so every rank decides alike.
"""

from __future__ import annotations

from smollab.data.mixture import MixtureSampler, StagePlan
from smollab.mix.config import OdmPolicy
from smollab.mix.odm import OnlineMixer
from smollab.recipe import Recipe


class OnlineMixing:
    """Drives the ODM bandits of a run: ``before_step`` may change the schedule, ``after_step`` feeds losses."""

    def __init__(self, recipe: Recipe, sampler: MixtureSampler):
        self.recipe = recipe
        self.sampler = sampler
        self.stage: int | None = None
        self.mixer: OnlineMixer | None = None

    def _policy(self, plan: StagePlan) -> OdmPolicy | None:
        policy = self.recipe.stages[plan.index].rebalance
        return policy if isinstance(policy, OdmPolicy) else None

    def _enter(self, plan: StagePlan) -> None:
        self.stage, self.mixer = plan.index, None
        if policy := self._policy(plan):
            first = self.sampler.segment_of_step(plan.start_step)
            self.mixer = OnlineMixer(policy, list(first.sources), {s: first.weight(s) for s in first.sources})

    def before_step(self, step: int) -> list[dict]:
        """Take the decision due before ``step``, if one is; returns its ``decisions.jsonl`` lines."""
        plan = self.sampler.stage_of_step(step)
        if plan.index != self.stage:
            self._enter(plan)
        if self.mixer is None or step == plan.start_step or (step - plan.start_step) % self.mixer.config.every_steps:
            return []
        before = dict(self.mixer.shares)
        losses = dict(self.mixer.losses)
        shares = self.mixer.decide()
        segment = self.sampler.set_shares(step, shares, decision=f"odm round {self.mixer.rounds}")
        return [{"step": step, "stage": plan.name, "policy": "odm", "round": self.mixer.rounds, "smoothed_losses": losses,
                 "shares_before": before, "shares_after": shares, "segment": segment.to_json()}]

    def after_step(self, loss_per_source: dict[str, float]) -> None:
        if self.mixer is not None:
            self.mixer.observe(loss_per_source)

    def state_dict(self) -> dict | None:
        return None if self.mixer is None else {"stage": self.stage, "mixer": self.mixer.state_dict()}

    def load_state_dict(self, state: dict | None, step: int) -> None:
        """Resume at ``step`` with the bandit a checkpoint saved (None: the stage has none yet)."""
        plan = self.sampler.stage_of_step(step)
        self._enter(plan)
        if state is not None and state["stage"] == plan.index and self.mixer is not None:
            self.mixer.load_state_dict(state["mixer"])
