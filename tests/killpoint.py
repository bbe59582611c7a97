"""Run the smollab CLI and SIGKILL it at a checkpoint's commit point (fault injection for tests).

usage: python tests/killpoint.py {before,after} STEP smollab-args...
``before``: killed after checkpoint STEP's files are written but before its atomic rename;
``after``: killed right after checkpoint STEP is published. Works under torchrun (rank 0 dies).
"""

import os
import signal
import sys

from smollab.train import checkpoint

mode, step, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
publish = checkpoint._publish


def publish_then_maybe_die(tmp, final):
    target = final.parent.name == "checkpoints" and final.name == f"step-{step}"
    if target and mode == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    publish(tmp, final)
    if target and mode == "after":
        os.kill(os.getpid(), signal.SIGKILL)


checkpoint._publish = publish_then_maybe_die
sys.argv = ["smollab", *args]

from smollab.cli import main  # noqa: E402

main()
