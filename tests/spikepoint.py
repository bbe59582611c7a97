"""Run the smollab CLI with corrupted training windows (fault injection for the spike guard's tests).

usage: python tests/spikepoint.py STEPS [--kill-after-rewind] smollab-args...
STEPS (``5`` or ``5,6``): the samples these steps draw under the recipe's own schedule are corrupt;
a step that trains on any of them gets a NaN loss and NaN gradients, as a window of garbage tokens
can give in low precision. The fault follows the data, not the step number, so a guard that skips
the window escapes it and one that retries the same samples does not.
``--kill-after-rewind``: SIGKILL right after the first rewind has rewritten its checkpoint.
"""

import os
import signal
import sys

from smollab.data.mixture import MixtureSampler
from smollab.train import loop

steps, args = [int(s) for s in sys.argv[1].split(",")], sys.argv[2:]
kill = args[:1] == ["--kill-after-rewind"]
args = args[1:] if kill else args
train_step, rewind = loop._train_step, loop._rewind
corrupt: set = set()


def identity(sampler, sample) -> tuple:
    return sample.source, sampler.stages[sample.stage].seq_len, sample.epoch, sample.window


def corrupted_train_step(objective, sampler, step, stage, recipe, runtime, autocast):
    if not corrupt:
        static = MixtureSampler(recipe, sampler.streams)
        corrupt.update(identity(static, s) for k in steps for s in static.step_samples(k))
    stats = train_step(objective, sampler, step, stage, recipe, runtime, autocast)
    if any(identity(sampler, s) in corrupt for s in sampler.step_samples(step)):
        for parameter in objective.parameters():
            parameter.grad.fill_(float("nan"))
        stats = stats | {"loss": float("nan")}
    return stats


def rewind_then_die(*rewind_args):
    rewind(*rewind_args)
    os.kill(os.getpid(), signal.SIGKILL)


loop._train_step = corrupted_train_step
if kill:
    loop._rewind = rewind_then_die
sys.argv = ["smollab", *args]

from smollab.cli import main  # noqa: E402

main()
