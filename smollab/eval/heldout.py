"""Held-out loss per source: mean next-token cross-entropy over each source's never-trained slice.

The slice (``smollab.data.heldout``) is cut into consecutive, non-overlapping windows of
``seq_len + 1`` tokens, each shaped like a training sample: its first ``seq_len`` tokens are the
input, its last ``seq_len`` the labels, so every token is scored at most once, with at most the
context a training sample gives it. A partial window at the end is dropped, so the loss is over a fixed
token count at a given ``seq_len`` and comparable from checkpoint to checkpoint. The LM head runs
over row chunks of the hidden states, so the (tokens × vocab) fp32 logits of a whole batch never
exist at once (3.2 GiB at SmolLM2's 49,152 vocabulary, 8 × 2,048 tokens); the cost is a Python loop
per chunk. The model is evaluated in eval mode without gradients and draws no random numbers
(dropout off, windows in order), so training continues bit for bit; its mode is restored.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from smollab.data.mixture import TokenSource
from smollab.errors import SmollabError

_CHUNK_ROWS = 1024


def _summed_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Σ cross-entropy of ``windows[:, 1:]`` given ``windows[:, :-1]``, the head applied chunk by chunk."""
    hidden = model.get_decoder()(input_ids=windows[:, :-1]).last_hidden_state.flatten(0, 1)
    labels = windows[:, 1:].flatten()
    head = model.get_output_embeddings()
    total = torch.zeros((), dtype=torch.float64, device=hidden.device)
    for start in range(0, len(labels), _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        total += F.cross_entropy(head(hidden[rows]).float(), labels[rows], reduction="sum").double()
    return total


def _mean_loss(model: torch.nn.Module, view: TokenSource, seq_len: int, batch_size: int,
               device: torch.device, source: str) -> float:
    window = seq_len + 1
    count = view.num_tokens // window
    if count < 1:
        raise SmollabError(
            f"eval.heldout.tokens: the {view.num_tokens:,} held-out tokens of source '{source}' hold no window of "
            f"seq_len + 1 = {window:,} tokens; raise it to at least {window:,}"
        )
    total = torch.zeros((), dtype=torch.float64, device=device)
    for first in range(0, count, batch_size):
        n = min(batch_size, count - first)
        tokens = torch.from_numpy(view.slice(first * window, (first + n) * window)).view(n, window).to(device)
        total += _summed_loss(model, tokens)
    return float(total) / (count * seq_len)  # one device sync per source


def heldout_loss(model: torch.nn.Module, views: dict[str, TokenSource], seq_len: int, batch_size: int,
                 device: torch.device | str,
                 autocast: contextlib.AbstractContextManager | None = None) -> dict[str, float]:
    """Mean next-token cross-entropy (nats per token) of a ``LlamaForCausalLM`` on each held-out view.

    ``autocast`` is the training loop's precision context (``torch.autocast`` or none: fp32).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            return {source: _mean_loss(model, view, seq_len, batch_size, torch.device(device), source)
                    for source, view in views.items()}
    finally:
        model.train(was_training)
