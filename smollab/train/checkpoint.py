"""Atomic, reshardable checkpoints and the Hugging Face export.

Training state (model + optimizer) is written with ``torch.distributed.checkpoint`` into a
temporary directory, then published with one ``rename``: a checkpoint directory either exists
complete or not at all, so a write killed midway leaves the previous one as the newest. DCP stores
tensors by fully-qualified name with their global shapes, so a run saved by N FSDP2 ranks loads
into M ranks (or one plain process). The loop position is a single integer (the next step): the
sampler and the LR schedule are pure functions of it. The HF export gathers a full state dict onto
rank 0 and writes ``save_pretrained`` + tokenizer, published the same atomic way.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from transformers import LlamaForCausalLM

from smollab.train.parallel import Runtime, barrier

META = "meta.json"
# DCP says so on every single-process save/load; single-process runs are intended here.
warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")


def _step_of(path: Path) -> int:
    return int(re.fullmatch(r"step-(\d+)", path.name).group(1))


def list_checkpoints(root: Path) -> list[Path]:
    """Published checkpoints, oldest first (temporary directories are never listed)."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if re.fullmatch(r"step-\d+", p.name) and (p / META).exists()), key=_step_of)


def _publish(tmp: Path, final: Path) -> None:
    """The commit point: one atomic rename."""
    tmp.rename(final)


def _prune(root: Path, keep: int) -> None:
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def remove_partial(root: Path) -> list[Path]:
    """Delete leftovers of interrupted writes; returns what was removed."""
    leftovers = [p for p in root.glob(".tmp-*")] if root.is_dir() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def rng_state() -> dict:
    return {"torch": torch.get_rng_state().tolist(), "numpy": np.random.get_state()[1].tolist(), "python": random.getstate()[1]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    np_state = np.random.get_state()
    np.random.set_state((np_state[0], np.array(state["numpy"], dtype=np.uint32), *np_state[2:]))
    python_state = random.getstate()
    random.setstate((python_state[0], tuple(state["python"]), python_state[2]))


def save(root: Path, step: int, model, optimizer, meta: dict, keep: int, runtime: Runtime) -> Path:
    """Write training state for resuming at ``step`` (the next step to run); returns its directory."""
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if runtime.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(runtime)
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp))
    barrier(runtime)
    if runtime.is_main:
        (tmp / META).write_text(json.dumps({**meta, "step": step, "rng": rng_state()}, indent=1))
        _publish(tmp, final)
        _prune(root, keep)
    barrier(runtime)
    return final


def load(path: Path, model, optimizer) -> dict:
    """Restore model and optimizer in place (any rank count); returns the metadata."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    meta = json.loads((path / META).read_text())
    set_rng_state(meta["rng"])
    return meta


def export_hf(model, tokenizer, out: Path, runtime: Runtime) -> Path | None:
    """Gather full weights and write an HF model directory (``from_pretrained`` loads it)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    if runtime.is_main:
        tmp = out.with_name(f".tmp-{out.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        with torch.device("meta"):
            export = LlamaForCausalLM(model.config)
        export.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
        export.tie_weights()
        export.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        _publish(tmp, out)
    barrier(runtime)
    return out if runtime.is_main else None
