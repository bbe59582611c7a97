"""A ``torch.profiler`` window over chosen training steps, and where their time went.

``train.profile: {start_step, steps}`` records those steps (CPU ops, and CUDA kernels on a GPU) and
writes, per rank, a Chrome trace, the per-op table and a JSON summary that sorts the time into the
buckets that decide a small model's throughput: GEMMs, attention kernels, the kernels ``torch.compile``
generated (fused elementwise work), collectives (FSDP2's all-gathers and reduce-scatters, the step's
all-reduce, and waiting on them), all other ops, and time outside any op (Python, the framework).
The GEMM and attention buckets are what no training loop can skip, so they bound how much faster any
loop can be. The trade-off: the profiler costs a few percent per op and the trace is large, so the
window is opt-in and short, and the ``tok_s`` logged for profiled steps reads a little low. On a CPU,
``TORCHINDUCTOR_CPP_ENABLE_KERNEL_PROFILE=1`` names each generated kernel in the op table (RMSNorm,
SwiGLU, RoPE, the loss's softmax: ``cpp_fused_…``), still counted as compiled kernels.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from smollab.recipe import ProfileWindow

GEMM_OPS = frozenset({"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::addbmm"})
# FSDP2's own ranges hold the waits on its collectives (their copies in and out included); c10d ops are the
# collectives themselves, wait_tensor the waits of functional ones
COMMUNICATION_MARKS = ("c10d", "record_param_comms", "nccl", "gloo", "FSDP::all_gather", "FSDP::post_backward_reduce",
                       "wait_tensor")
BUCKETS = ("gemm", "attention", "compiled_kernels", "communication", "other_ops")


def bucket_of(name: str) -> str:
    """The bucket of one profiler event name."""
    if name in GEMM_OPS:
        return "gemm"
    if "scaled_dot_product" in name or "flash_attention" in name or "efficient_attention" in name:
        return "attention"
    if name.startswith("## Call CompiledFxGraph") or name.startswith("triton_") or "cpp_fused" in name:
        return "compiled_kernels"
    if any(mark in name for mark in COMMUNICATION_MARKS):
        return "communication"
    return "other_ops"


def time_breakdown(events, wall_s: float, device_type: str) -> dict:
    """Seconds per bucket from ``profile.key_averages()``, plus ``outside_ops`` = wall − all op time.

    Self times partition the profiled time (nested ops count once), on the device that computes:
    CPU self time on a CPU; on a GPU, the time of the kernels each host op launched (the kernel
    events themselves are skipped, as they repeat that time), and ``outside_ops`` is GPU idle time.
    """
    attribute = _self_time(device_type)
    seconds = dict.fromkeys(BUCKETS, 0.0)
    for event in events:
        if event.device_type == DeviceType.CPU:
            seconds[bucket_of(event.key)] += getattr(event, attribute) / 1e6
    seconds["outside_ops"] = max(wall_s - sum(seconds.values()), 0.0)
    return {"wall_s": wall_s, **seconds}


def _self_time(device_type: str) -> str:
    return "self_device_time_total" if device_type == "cuda" else "self_cpu_time_total"


def summary_line(breakdown: dict) -> str:
    wall = breakdown["wall_s"]
    parts = ", ".join(f"{breakdown[key] / wall:.0%} {key.replace('_', ' ')}" for key in (*BUCKETS, "outside_ops"))
    return f"{parts} of {wall:.2f} s"


class StepProfiler:
    """Starts the profiler before step ``start_step`` and reports after ``steps`` steps; idle otherwise.

    The caller prints: ``step_ended`` and ``close`` return the one-line report when they write one.
    """

    def __init__(self, window: ProfileWindow | None, out_dir: Path, rank: int, device: torch.device,
                 tokens_per_step: int):
        self.window, self.out_dir, self.rank, self.device = window, out_dir, rank, device
        self.tokens_per_step = tokens_per_step
        self.profiler: profile | None = None
        self.wall_s = 0.0
        self.last_step = -1

    def step_begins(self, step: int) -> None:
        if self.window and step == self.window.start_step:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
            self.profiler = profile(activities=activities, record_shapes=True)
            self.profiler.start()

    def step_ended(self, step: int, elapsed_s: float) -> str | None:
        if self.profiler is None:
            return None
        self.wall_s += elapsed_s
        self.last_step = step
        return self.close() if step + 1 == self.window.start_step + self.window.steps else None

    def close(self) -> str | None:
        """Write the window's report: after its last step, or early when training ends inside it."""
        if self.profiler is None:
            return None
        self.profiler.stop()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        events = self.profiler.key_averages()
        suffix = f"rank{self.rank}"
        (self.out_dir / f"ops-{suffix}.txt").write_text(events.table(sort_by=_self_time(self.device.type), row_limit=40))
        self.profiler.export_chrome_trace(str(self.out_dir / f"trace-{suffix}.json"))
        breakdown = time_breakdown(events, self.wall_s, self.device.type)
        steps = self.last_step - self.window.start_step + 1
        summary = {"steps": [self.window.start_step, self.last_step], "tokens": steps * self.tokens_per_step, **breakdown}
        (self.out_dir / f"summary-{suffix}.json").write_text(json.dumps(summary, indent=1))
        self.profiler = None
        return (f"profile of steps {self.window.start_step}–{self.last_step}: {summary_line(breakdown)}; "
                f"trace and op table in {self.out_dir}")
