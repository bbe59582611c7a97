"""Warmup-Stable-Decay learning rate, as SmolLM2 used it (spec §2.2).

The LR is a pure function of the optimizer step, so resuming needs no scheduler state and a stage
table can be printed before training. Decay length is a fraction of the *total* steps of the
recipe: like the paper, deciding when to decay means choosing the last stage boundary.
"""

import math
from typing import Literal

from smollab.recipe import ScheduleConfig

Phase = Literal["warmup", "stable", "decay"]


class WSD:
    def __init__(self, schedule: ScheduleConfig, peak_lr: float, total_steps: int):
        self.peak = peak_lr
        self.final = schedule.decay.to
        self.shape = schedule.decay.shape
        self.total_steps = total_steps
        self.warmup_steps = min(schedule.warmup_steps, total_steps)
        self.decay_steps = round(schedule.decay.fraction * total_steps)
        self.decay_start = total_steps - self.decay_steps

    def phase(self, step: int) -> Phase:
        if step >= self.decay_start:
            return "decay"
        return "warmup" if step < self.warmup_steps else "stable"

    def lr(self, step: int) -> float:
        """LR for optimizer step ``step`` (0-based); warmup reaches the peak on its last step."""
        if step < self.warmup_steps and step < self.decay_start:
            return self.peak * (step + 1) / self.warmup_steps
        if step < self.decay_start:
            return self.peak
        progress = min(1.0, (step - self.decay_start + 1) / max(1, self.decay_steps))
        if self.shape == "linear":
            remaining = 1.0 - progress
        elif self.shape == "1-sqrt":
            remaining = 1.0 - math.sqrt(progress)
        else:
            remaining = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.final + (self.peak - self.final) * remaining
