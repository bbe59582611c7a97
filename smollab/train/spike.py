"""The loss-spike guard: judge each step's loss before the optimizer applies it, and undo spikes.

A spike is a loss more than ``sigmas`` standard deviations above the mean of the stage's last
``window`` clean steps (judged once ``min_history`` of them are seen), or a loss or grad-norm that
is not finite. The loop then reloads the last checkpoint, skips the spiking step's samples in the
schedule and trains on; after ``max_rewinds`` rewinds in a row it gives up with one line. Only clean
losses enter the window, and the window restarts with each stage, because a new mixture or
sequence length moves the loss level by more than its step-to-step noise; the cost is
``min_history`` unjudged steps per stage (non-finite values are always caught). Within a stage,
share changes (rules, ODM) are taken as gradual and do not restart it.

The guard is plain JSON (floats round-trip exactly), saved in each checkpoint's meta: a resumed run
judges with the same window, and a spike's ``decisions.jsonl`` line, written once its step trains
cleanly, survives as pending state in the checkpoint rewritten by the rewind. The loss and grad-norm
it reads are already reduced over ranks, so every rank judges alike.
"""

from __future__ import annotations

import math

from smollab.recipe import SpikeGuardConfig

_MIN_RELATIVE_SPREAD = 1e-3
"""The deviation is taken as at least 0.1% of the mean, so a flat loss history does not make every
tiny rise a spike (with 6 σ, a spike is then at least 0.6% above the mean)."""


class SpikeGuard:
    """Rolling loss history of the current stage, the rewinds in a row, and spike events not yet logged."""

    def __init__(self, config: SpikeGuardConfig):
        self.config = config
        self.stage: int | None = None
        self.losses: list[float] = []
        self.rewinds = 0
        self.frontier = -1  # the furthest step that spiked in the current run of rewinds
        self.pending: list[dict] = []

    def judge(self, stage: int, loss: float, grad_norm: float) -> str | None:
        """Why this step is a spike, or None when it is not."""
        if stage != self.stage:
            self.stage, self.losses = stage, []
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            return f"loss {loss:g}, grad-norm {grad_norm:g}: not finite"
        if len(self.losses) < self.config.min_history:
            return None
        mean = sum(self.losses) / len(self.losses)
        spread = max(math.sqrt(sum((x - mean) ** 2 for x in self.losses) / len(self.losses)),
                     _MIN_RELATIVE_SPREAD * abs(mean))
        if loss > mean + self.config.sigmas * spread:
            return f"loss {loss:.4f} is {(loss - mean) / spread:.1f} σ above the mean {mean:.4f} of the last {len(self.losses)} steps"
        return None

    def passed(self, step: int, loss: float) -> list[dict]:
        """A clean step: its loss joins the window; returns the spike events of ``step`` to log now."""
        self.losses = (self.losses + [loss])[-self.config.window:]
        if step >= self.frontier:
            self.rewinds = 0
        due = [event for event in self.pending if event["step"] == step]
        self.pending = [event for event in self.pending if event["step"] != step]
        return due

    def spiked(self, event: dict) -> None:
        """Count a rewind for ``event`` (a ``decisions.jsonl`` record with ``step``, ``reason``, ``skipped``).

        The event stays pending until its step trains cleanly, and so does the count of rewinds in a
        row: replayed steps before the spiking one do not reset it.
        """
        self.rewinds += 1
        self.frontier = max(self.frontier, event["step"])
        self.pending.append(event | {"rewind": self.rewinds})

    @property
    def exhausted(self) -> bool:
        """More rewinds in a row than ``max_rewinds``: time to give up (``give_up_message``)."""
        return self.rewinds > self.config.max_rewinds

    def rewound(self, state: dict | None) -> None:
        """Back at a checkpoint: its window and stage; the rewinds in a row and pending events stay."""
        self.stage, self.losses = (state["stage"], list(state["losses"])) if state else (None, [])

    def state_dict(self) -> dict:
        return {"stage": self.stage, "losses": list(self.losses), "rewinds": self.rewinds, "frontier": self.frontier,
                "pending": list(self.pending)}

    def load_state_dict(self, state: dict | None) -> None:
        """Resume with a checkpoint's guard (None: a checkpoint written without one, judged afresh)."""
        if state:
            self.rewound(state)
            self.rewinds, self.frontier, self.pending = state["rewinds"], state["frontier"], list(state["pending"])


def skipped_windows(samples) -> dict[str, list[int]]:
    """The skipped samples as ``{source: [window, ...]}``: window ``w`` is tokens ``w·seq_len`` on of the source's stream."""
    out: dict[str, list[int]] = {}
    for sample in samples:
        out.setdefault(sample.source, []).append(sample.window)
    return out


def give_up_message(events: list[dict], max_rewinds: int) -> str:
    """One line: which steps kept spiking, the data they were reading, and what to change."""
    spiking = list(dict.fromkeys(event["step"] for event in events))
    steps = ("step " if len(spiking) == 1 else "steps ") + ", ".join(map(str, spiking))
    last = events[-1]
    data = "; ".join(f"{source} windows {', '.join(map(str, windows[:3]))}{'…' if len(windows) > 3 else ''} "
                     f"({len(windows)} samples)" for source, windows in last["skipped"].items())
    return (f"train.spike_guard: {steps} spiked {len(events)} times in a row (last: {last['reason']}), more than "
            f"max_rewinds {max_rewinds}; lower optim.lr or raise schedule.warmup_steps, or check the data read at "
            f"step {last['step']} ({data}; window w is tokens w·seq_len on in the source's shards), "
            "or raise train.spike_guard.max_rewinds")
