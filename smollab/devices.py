"""Turn a user's device choice ("auto", "cpu", "cuda", "cuda:N") into a ``torch.device``.

``smollab eval --device`` and the recipe's ``train.device`` share this one resolver, so both accept
the same spellings and refuse a CUDA device the machine does not have with the same one-line error,
before any model is loaded. The trade-off: only CPUs and CUDA GPUs are spelled here (no "mps" or
other backends), because those are the two the training and evaluation code is tested on.
"""

import re

import torch

from smollab.errors import SmollabError


def resolve_device(spec: str, field: str) -> torch.device:
    """The device ``spec`` names; ``field`` is the option it came from, quoted in errors.

    "auto" is the first CUDA GPU when torch sees one, else the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise SmollabError(f"{field} {spec}: not a device; use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise SmollabError(f"{field} {spec}: this machine has no CUDA device that torch can use; "
                           f"use {field} cpu or auto.")
    index, count = int(match.group(1) or 0), torch.cuda.device_count()
    if index >= count:
        raise SmollabError(f"{field} {spec}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}; "
                           "pick one of those, or auto.")
    return torch.device("cuda", index)
