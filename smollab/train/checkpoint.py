"""Atomic, reshardable checkpoints and the Hugging Face export.

Training state (model + optimizer) is written with ``torch.distributed.checkpoint`` into a
temporary directory, then published with one ``rename``: a checkpoint directory either exists
complete or not at all, so a write killed midway leaves the previous one as the newest. DCP stores
tensors by fully-qualified name with their global shapes, so a run saved by N FSDP2 ranks loads
into M ranks (or one plain process). The loop position is a single integer (the next step): the
sampler and the LR schedule are pure functions of it. The HF export gathers a full state dict onto
rank 0 and writes ``save_pretrained`` + tokenizer, published the same atomic way.

A published checkpoint can still be damaged later (a file deleted, a copy truncated), so
``meta.json`` records the byte size of every file DCP wrote, and resuming checks the sizes before
loading and falls back to the newest checkpoint that passes. Sizes catch deletion and truncation
at the cost of a ``stat`` per file; a checksum would also catch bytes flipped in place but would
read the whole checkpoint (tens of GB at 1.7B) on every resume, so it is left out.
"""

from __future__ import annotations

import contextlib
import copy
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
    set_model_state_dict,
    set_state_dict,
)
from transformers import LlamaForCausalLM
from transformers.utils import logging as hf_logging

from smollab.errors import SmollabError
from smollab.train.parallel import Runtime, barrier

META = "meta.json"
# DCP says so on every single-process save/load; single-process runs are intended here.
warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")


def _step_of(path: Path) -> int:
    return int(re.fullmatch(r"step-(\d+)", path.name).group(1))


def list_checkpoints(root: Path) -> list[Path]:
    """Published checkpoints (``meta.json`` is written last), oldest first; temporary directories are never listed."""
    return [p for p in reversed(step_dirs(root)) if (p / META).exists()]


def step_dirs(root: Path) -> list[Path]:
    """Every ``step-N`` directory, complete or not, newest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if re.fullmatch(r"step-\d+", p.name)), key=_step_of, reverse=True)


def _publish(tmp: Path, final: Path) -> None:
    """The commit point: one atomic rename.

    A directory already at ``final`` (an unreadable checkpoint of the same step that training
    fell back from, or an older export) is moved aside first and deleted after the rename, so
    at every instant one of the two versions is in place.
    """
    replaced = final.with_name(f".tmp-replaced-{final.name}")
    if final.exists():
        shutil.rmtree(replaced, ignore_errors=True)
        final.rename(replaced)
    tmp.rename(final)
    shutil.rmtree(replaced, ignore_errors=True)


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
        files = {f.name: f.stat().st_size for f in sorted(tmp.iterdir()) if f.is_file()}
        (tmp / META).write_text(json.dumps({**meta, "step": step, "rng": rng_state(), "files": files}, indent=1))
        _publish(tmp, final)
        _prune(root, keep)
    barrier(runtime)
    return final


def damage(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from, or None when its files are all there."""
    try:
        meta = json.loads((path / META).read_text())
    except FileNotFoundError:
        return f"it has no {META} (its write did not finish)"
    except (OSError, ValueError) as err:
        return f"its {META} is unreadable ({err})"
    for name, size in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size:,} bytes, not the {size:,} written"
    return None


def load_newest(root: Path, model, optimizer, runtime: Runtime, warn) -> dict:
    """Restore the newest checkpoint under ``root`` that is intact; ``warn`` gets one line per one skipped.

    Files are checked before DCP reads any of them, on every rank alike, so all ranks skip the same
    checkpoints. A checkpoint whose files look whole but fail to load is skipped too in one
    process; under several ranks the error is raised instead, because ranks that failed and ranks
    that did not would no longer agree on what to load next.
    """
    skipped = []
    for path in step_dirs(root):
        problem = damage(path)
        if problem is None:
            try:
                return load(path, model, optimizer) | {"path": str(path)}
            except Exception as err:  # DCP raises whatever its reader hit: pickle, I/O, shape errors
                problem = f"loading it failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                if runtime.distributed:
                    raise SmollabError(f"checkpoint {path} is unreadable: {problem}; delete it to resume from an older one") from None
        skipped.append(f"{path.name}: {problem}")
        warn(f"checkpoint {path} is unreadable: {problem}; trying an older one")
    if not skipped:
        raise SmollabError(f"--resume: no checkpoint under {root}; start without --resume")
    raise SmollabError(f"--resume: no readable checkpoint under {root} ({'; '.join(skipped)}); start again with --overwrite")


def load(path: Path, model, optimizer) -> dict:
    """Restore model and optimizer in place (any rank count); returns the metadata."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    meta = json.loads((path / META).read_text())
    set_rng_state(meta["rng"])
    return meta


def read_meta(path: Path) -> dict:
    """A published checkpoint's ``meta.json`` (step, schedule, policies' state, file sizes)."""
    try:
        return json.loads((path / META).read_text())
    except (OSError, ValueError) as err:
        raise SmollabError(f"{path / META} is unreadable ({err}); use another checkpoint") from None


def parent_checkpoint(run_dir: Path, step: int | None) -> Path:
    """The published, intact checkpoint of ``run_dir`` at ``step`` (None: its newest); one error line otherwise."""
    published = list_checkpoints(run_dir / "checkpoints")
    if not published:
        raise SmollabError(f"anneal.from_run: {run_dir} has no published checkpoint under checkpoints/; "
                           "train that run first or name another run directory")
    path = published[-1] if step is None else run_dir / "checkpoints" / f"step-{step}"
    if path not in published:
        steps = ", ".join(str(_step_of(p)) for p in published)
        raise SmollabError(f"anneal.step: {run_dir} has no checkpoint at step {step}; it keeps steps {steps}")
    if problem := damage(path):
        raise SmollabError(f"anneal: checkpoint {path} is unreadable: {problem}; branch from another step (anneal.step)")
    return path


def load_parent(anneal, model, optimizer) -> Path:
    """Start a branch from ``anneal``'s parent checkpoint: weights always, AdamW moments when ``anneal.optimizer``.

    The RNG state is the parent's too, so a branch that keeps every setting of its parent trains
    exactly as the parent would have continued."""
    path = parent_checkpoint(Path(anneal.from_run), anneal.step)
    try:
        if anneal.optimizer:
            load(path, model, optimizer)
        else:
            state = {"model": get_model_state_dict(model)}
            dcp.load(state, checkpoint_id=str(path))
            set_model_state_dict(model, state["model"])
            set_rng_state(read_meta(path)["rng"])
    except (RuntimeError, ValueError, KeyError) as err:  # DCP's shape/key mismatches
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SmollabError(f"anneal.from_run: checkpoint {path} does not fit this recipe's model ({first}); "
                           "keep the parent's model section (smollab anneal copies it)") from None
    return path


@contextlib.contextmanager
def quiet_transformers():
    """Without transformers' own "Writing model shards" / "Loading weights" bars (smollab's progress owns the console)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def tokenizer_agreeing_with(config, tokenizer):
    """A copy of ``tokenizer`` whose bos/eos are the tokens the model config's ids name.

    The bundled SmolLM2 tokenizer carries the Instruct model's ChatML roles (eos ``<|im_end|>``),
    while a pretrained model's config names the document separator it was trained with; an export
    whose two files disagree stops generation at the wrong token in whichever library reads one.
    """
    agreeing = copy.deepcopy(tokenizer)
    for role in ("bos", "eos"):
        token_id = getattr(config, f"{role}_token_id", None)
        if isinstance(token_id, int):
            setattr(agreeing, f"{role}_token", agreeing.convert_ids_to_tokens(token_id))
    return agreeing


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
        with quiet_transformers():
            export.save_pretrained(tmp)
        tokenizer_agreeing_with(export.config, tokenizer).save_pretrained(tmp)
        _publish(tmp, out)
    barrier(runtime)
    return out if runtime.is_main else None
