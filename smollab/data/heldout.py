"""Held-out slices: the last ``N`` tokens of each source are never trained on, only scored.

A source's stream is split into two views over disjoint token ranges: training reads
``[0, T - N)``, the held-out loss reads ``[T - N, T)``. Holding out the *end* keeps the training
view's token indices those of the stream, so window ``w`` is the same tokens with or without a
held-out slice (only the number of windows, hence the shuffle, changes), and a recipe without
``eval.heldout`` trains on the whole stream, sample for sample as before. The split is a pure
function of the shards and ``N``: every rank and every resume computes the same one. The trade-off:
the slice is the last documents in input order, not a random sample, and the document that
straddles the cut has its head trained on and its tail held out (at most one per source).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smollab.data.mixture import TokenSource
from smollab.data.shards import load_streams
from smollab.errors import SmollabError
from smollab.recipe import Recipe


@dataclass(frozen=True)
class StreamView:
    """Tokens ``[start, stop)`` of a stream, indexed from 0; reading past either end is an ``IndexError``."""

    stream: TokenSource
    start: int
    stop: int

    @property
    def num_tokens(self) -> int:
        return self.stop - self.start

    def slice(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self.num_tokens:
            raise IndexError(f"slice [{start}, {stop}) is outside the {self.num_tokens:,} tokens of view "
                             f"[{self.start:,}, {self.stop:,}) of {self.stream}")
        return self.stream.slice(self.start + start, self.start + stop)


def split_stream(stream: TokenSource, heldout_tokens: int, seq_len: int, source: str) -> tuple[StreamView, StreamView]:
    """``(training view, held-out view)`` of ``source``'s stream, the held-out view its last ``heldout_tokens``.

    ``seq_len`` is the longest sequence either side is read at: both views must hold one window of
    ``seq_len + 1`` tokens (a training sample, an evaluation window).
    """
    window = seq_len + 1
    if heldout_tokens < window:
        raise SmollabError(
            f"eval.heldout.tokens: {heldout_tokens:,} tokens hold no evaluation window of seq_len + 1 = {window:,} "
            f"tokens; raise it to at least {window:,}"
        )
    total = stream.num_tokens
    if total - heldout_tokens < window:
        raise SmollabError(
            f"eval.heldout.tokens: holding out {heldout_tokens:,} of the {total:,} tokens of source '{source}' leaves "
            f"less than one training sequence of {window:,}; lower it to at most {max(total - window, 0):,} "
            f"or add documents to data.sources.{source}"
        )
    cut = total - heldout_tokens
    return StreamView(stream, 0, cut), StreamView(stream, cut, total)


def split_streams(streams: dict[str, TokenSource], heldout_tokens: int,
                  seq_len: int) -> tuple[dict[str, StreamView], dict[str, StreamView]]:
    """``split_stream`` for every source: the training views (for the sampler) and the held-out views."""
    pairs = {name: split_stream(stream, heldout_tokens, seq_len, name) for name, stream in streams.items()}
    return {name: train for name, (train, _) in pairs.items()}, {name: held for name, (_, held) in pairs.items()}


def training_streams(recipe: Recipe, names: list[str]) -> tuple[dict[str, TokenSource], dict[str, StreamView]]:
    """The streams training reads (without their held-out ends when ``eval.heldout`` is set) and the held-out views.

    One function for the loop and for anything that rebuilds the run's sampler (``smollab mixture``, the
    demo summary), so both see the same windows and therefore the same samples and epochs.
    """
    streams = load_streams(recipe.shards_dir, names)
    if recipe.eval.heldout is None:
        return streams, {}
    longest = max([recipe.batch.seq_len] + [stage.seq_len or 0 for stage in recipe.stages])
    return split_streams(streams, recipe.eval.heldout.tokens, longest)
