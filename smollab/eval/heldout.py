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

import numpy as np
import torch
import torch.nn.functional as F

from smollab.data.mixture import TokenSource
from smollab.errors import SmollabError

_CHUNK_ROWS = 1024


def _window_losses(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Σ cross-entropy per row of ``windows[:, 1:]`` given ``windows[:, :-1]``, the head applied chunk by chunk."""
    hidden = model.get_decoder()(input_ids=windows[:, :-1]).last_hidden_state.flatten(0, 1)
    labels = windows[:, 1:].flatten()
    head = model.get_output_embeddings()
    losses = torch.cat([F.cross_entropy(head(hidden[start:start + _CHUNK_ROWS]).float(), labels[start:start + _CHUNK_ROWS],
                                        reduction="none") for start in range(0, len(labels), _CHUNK_ROWS)])
    return losses.double().view(len(windows), -1).sum(dim=1)


def _windows(view: TokenSource, seq_len: int, source: str) -> list[tuple[int, int]]:
    """``(start, stop)`` token ranges of the view's whole windows of ``seq_len + 1`` tokens."""
    window = seq_len + 1
    count = view.num_tokens // window
    if count < 1:
        raise SmollabError(
            f"eval.heldout.tokens: the {view.num_tokens:,} held-out tokens of source '{source}' hold no window of "
            f"seq_len + 1 = {window:,} tokens; raise it to at least {window:,}"
        )
    return [(i * window, (i + 1) * window) for i in range(count)]


def heldout_loss(model: torch.nn.Module, views: dict[str, TokenSource], seq_len: int, batch_size: int,
                 device: torch.device | str,
                 autocast: contextlib.AbstractContextManager | None = None) -> dict[str, float]:
    """Mean next-token cross-entropy (nats per token) of a ``LlamaForCausalLM`` on each held-out view.

    ``autocast`` is the training loop's precision context (``torch.autocast`` or none: fp32).
    """
    was_training = model.training
    model.eval()
    try:
        # every source's windows in one list, batched across sources: a small model on a CPU pays per
        # forward pass, so few full batches beat one pass per source
        rows = [(source, span) for source, view in views.items() for span in _windows(view, seq_len, source)]
        totals = torch.zeros(len(rows), dtype=torch.float64, device=device)
        with torch.no_grad(), autocast or contextlib.nullcontext():
            for first in range(0, len(rows), batch_size):
                batch = rows[first:first + batch_size]
                tokens = torch.from_numpy(np.stack([views[source].slice(*span) for source, span in batch])).to(device)
                totals[first:first + len(batch)] = _window_losses(model, tokens)
        sums = totals.cpu().tolist()  # one device sync
        return {source: sum(loss for (name, _), loss in zip(rows, sums) if name == source)
                / (sum(name == source for name, _ in rows) * seq_len) for source in views}
    finally:
        model.train(was_training)
