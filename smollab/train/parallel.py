"""How the model is placed on hardware: process group, precision, FSDP2, checkpointing, compile, MFU.

The model stays a stock ``LlamaForCausalLM``; everything about parallelism is applied here from the
outside (torchtitan's split), in one order (``parallelize``): activation checkpointing wraps each
decoder block, FSDP2 shards each block and then the root (which owns the tied embedding / LM head),
compile comes last. bf16 has one mechanism per setting: a single process autocasts op by op over its
fp32 weights; under ``torchrun`` FSDP2's ``MixedPrecisionPolicy`` gathers bf16 parameters for compute,
reduces gradients in fp32 and steps fp32 master shards, so no autocast runs on top. MFU divides by a
per-device peak: dense bf16 datasheet figures for datacenter GPUs, and on CPU a matmul ceiling
measured once per machine and cached — never a hard-coded number that silently turns wrong elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from smollab.devices import resolve_device
from smollab.paths import cache_dir

# Dense bf16 tensor-core peaks (FLOP/s), from the vendors' datasheets (SXM parts unless named); the first
# key found in the device name wins, so the PCIe H100 comes before the SXM one.
GPU_PEAK_BF16 = {"H200": 989.4e12, "H100 PCIe": 756.5e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362.05e12,
                 "A10G": 125e12}


@dataclass(frozen=True)
class Runtime:
    rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_runtime(device: str = "auto") -> Runtime:
    """Join the torchrun process group if there is one; pick the device."""
    use_cuda = resolve_device(device, "train.device").type == "cuda"  # a CUDA device that is not there: one line
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if world > 1 and not dist.is_initialized():
        # generous timeout: other ranks wait at a barrier while rank 0 runs in-loop evaluation. On GPUs
        # gloo serves the CPU tensors (the per-step loss totals, DCP's metadata): NCCL takes CUDA tensors only.
        backend = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, timeout=timedelta(hours=2))
    return Runtime(rank, world, torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"))


def native_bf16(device: torch.device) -> bool:
    """Whether this device multiplies bf16 natively: CUDA with bf16, or a CPU with AVX512-BF16 / AMX.

    On x86 the CPU's own feature bits decide (torch's private ``torch.cpu`` probes): oneDNN's
    ``_is_mkldnn_bf16_supported`` also says yes for AVX-512 without BF16 (Skylake, Cascade Lake),
    where it converts and multiplies in fp32 and is slower than fp32 outright. Elsewhere (Arm)
    oneDNN's check is the best available.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if platform.machine().lower() in ("x86_64", "amd64"):
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(requested: str, device: torch.device) -> torch.dtype:
    """``train.precision`` → the compute dtype on this device.

    ``auto`` picks bf16 only where it is native, so one recipe runs at full speed on a GPU, a
    bf16-capable CPU and an AVX2-only CPU alike (where a 2048² bf16 matmul takes a minute against
    0.2 s in fp32); the price is that the same recipe may compute in different precisions on
    different machines, which is why the loop logs the resolved precision on every step.
    """
    native = native_bf16(device)
    if requested == "fp32" or (requested == "auto" and not native):
        return torch.float32
    if not native:
        warnings.warn(f"train.precision: bf16 on a {device.type} without native bf16 runs orders of magnitude "
                      "slower than fp32; set train.precision=auto or fp32", stacklevel=2)
    return torch.bfloat16


def use_deterministic_kernels(requested: str | bool, device: torch.device) -> None:
    """``train.deterministic`` → turn run-to-run reproducible kernels on or off.

    Compiled training on a multi-threaded CPU is otherwise not bit-reproducible: Inductor scatters the
    embedding gradient with atomic adds whose order varies, so two identical runs drift apart in
    the last bits from the second step and a resumed run cannot retrace the original. In
    deterministic mode Inductor falls back to the sorted ``index_put`` for that op, at no measurable
    cost on CPU (bench/RESULTS.md), so ``auto`` turns it on for CPUs, where ops without a deterministic
    kernel warn instead of stopping a long run. On GPUs ``auto`` leaves it off, because it costs
    speed there; ``true`` is strict on a GPU: SDPA's flash and memory-efficient backward kernels
    (atomic adds into dQ) switch to their deterministic variants only when torch is told not to
    merely warn, cuBLAS gets a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS starts),
    and Inductor skips kernel choices made by on-device timing, which can differ between runs. An op
    with no deterministic CUDA kernel then stops the run at its first use, naming the op.
    """
    enabled = requested is True or (requested == "auto" and device.type == "cpu")
    strict = enabled and device.type == "cuda"
    if strict:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        import torch._inductor.config as inductor_config

        inductor_config.deterministic = True
    torch.use_deterministic_algorithms(enabled, warn_only=not strict)


def bf16_autocast(precision: torch.dtype, runtime: Runtime):
    """The context a micro-batch's forward runs in: bf16 autocast for a single process, else nothing.

    Under FSDP2 the ``MixedPrecisionPolicy`` (``mixed_precision``) already computes in bf16 from
    bf16-gathered parameters; autocast on top would only re-dispatch every op. The fused loss keeps
    its softmax in fp32 either way (``loss.py``).
    """
    if precision == torch.bfloat16 and not runtime.distributed:
        return torch.autocast(runtime.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def mixed_precision(precision: torch.dtype):
    """FSDP2's policy for a compute dtype: bf16 parameters for compute (half the all-gather bytes),
    fp32 gradient reduction, fp32 master shards (what the optimizer steps); fp32 is FSDP's default,
    which computes in the parameters' own dtype."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == torch.bfloat16:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def checkpoint_blocks(objective: torch.nn.Module) -> None:
    """Activation checkpointing: each decoder block keeps only its input for backward and recomputes
    the rest there (about one more forward of compute for a block's activations in memory).

    PyTorch's non-reentrant ``checkpoint_wrapper`` replaces each block in place; its parameter names
    drop the wrapper's prefix, so checkpoints and exports read the same with and without it. The
    recompute replays the forward's RNG state, and SmolLM2's blocks draw none (no dropout).
    """
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    layers = objective.lm.model.layers
    for i, block in enumerate(layers):
        layers[i] = checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT)


def shard(objective: torch.nn.Module, runtime: Runtime, precision: torch.dtype) -> torch.nn.Module:
    """FSDP2: one unit per decoder block, then the root (model + loss), each with the precision's
    policy (``mixed_precision``). A no-op for a single process."""
    if not runtime.distributed:
        return objective
    from torch.distributed.fsdp import fully_shard

    policy = mixed_precision(precision)
    for block in objective.lm.model.layers:
        fully_shard(block, mp_policy=policy)
    fully_shard(objective, mp_policy=policy)
    return objective


def compile_model(objective: torch.nn.Module, runtime: Runtime) -> None:
    """``torch.compile``: the whole forward with its loss in one process, per decoder block under FSDP2.

    One graph lets Inductor fuse across block boundaries and into the loss (the edge a compiled HF
    ``Trainer`` model had over smollab's earlier per-block graphs); with FSDP2 each block is
    its own unit with gather/free hooks, and compiling per block (torchtitan's choice) keeps those
    hooks outside the graphs.
    """
    if not runtime.distributed:
        objective.compile()
        return
    for block in objective.lm.model.layers:
        block.compile()


def parallelize(objective: torch.nn.Module, runtime: Runtime, precision: torch.dtype, *,
                activation_checkpointing: bool, compiled: bool) -> torch.nn.Module:
    """Checkpointing, then FSDP2, then compile: the FSDP hooks sit outside each checkpointed block
    (its recompute finds the parameters gathered), and compile sees the finished modules."""
    if activation_checkpointing:
        checkpoint_blocks(objective)
    objective = shard(objective, runtime, precision)
    if compiled:
        compile_model(objective, runtime)
    return objective


def all_reduce_sum(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    if runtime.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token: 6·N for the matmuls plus 12·L·d_attn·T for attention scores (PaLM).

    N excludes the embedding lookup (free) but counts the LM-head matmul, so with tied embeddings
    it is the full parameter count.
    """
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    per_layer = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * config.intermediate_size
    lm_head = hidden * config.vocab_size
    matmul_params = layers * per_layer + lm_head
    return 6 * matmul_params + 12 * layers * heads * head_dim * seq_len


def measure_cpu_matmul_peak(dtype: torch.dtype = torch.bfloat16, size: int = 2048, seconds: float = 2.0) -> float:
    """Best sustained FLOP/s of a square matmul at the current thread count."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def cpu_peak_flops(dtype: torch.dtype = torch.bfloat16, refresh: bool = False) -> float:
    """The measured CPU ceiling, cached per (CPU model, threads, dtype).

    A measurement taken while other work loads the machine comes out low, so the cache keeps the
    best value ever measured; ``refresh`` measures again (benchmarks do, before reporting MFU).
    """
    capability = f"{torch.backends.cpu.get_cpu_capability()}{'-bf16' if native_bf16(torch.device('cpu')) else ''}"
    key = f"{platform.processor() or platform.machine()}-{_cpu_model()}-{capability}-t{torch.get_num_threads()}-{dtype}"
    path = cache_dir() / "cpu_peak.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    if refresh or key not in table:
        table[key] = max(table.get(key, 0.0), measure_cpu_matmul_peak(dtype))
        path.write_text(json.dumps(table, indent=1))
    return table[key]


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip().replace(" ", "_")
    except OSError:
        pass
    return "unknown"


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """Peak FLOP/s of one device: the GPU table, or the measured CPU ceiling (0 if unknown GPU)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in GPU_PEAK_BF16.items() if key in name), 0.0)
    return cpu_peak_flops(dtype)
