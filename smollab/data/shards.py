"""Memory-mapped reading of one source's token shards (datatrove ``.ds`` + ``.ds.index``, nanotron's format).

A source is the concatenation of its ``.ds`` files in sorted order, documents already separated by the
EOS token datatrove wrote, so ``slice(start, stop)`` is pure index arithmetic over ``np.memmap``s: only
the requested tokens are read and nothing is copied whole. The trade-off: the stream is one fixed
order (input order); any randomness belongs to the mixture sampler that picks which slices to read.
The token width (uint16 or uint32) comes from datatrove's ``.ds.metadata`` (``tokenizer|bytes``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smollab.errors import SmollabError

TOKEN_DTYPES = {2: np.uint16, 4: np.uint32}


def _token_size(ds_file: Path) -> int:
    metadata = ds_file.with_name(ds_file.name + ".metadata")
    if not metadata.exists():
        raise SmollabError(f"{ds_file} has no {metadata.name}; re-run `smollab tokenize RECIPE` into a fresh shards directory")
    return int(metadata.read_text().splitlines()[0].rsplit("|", 1)[1])


class TokenStream:
    """All tokens of one source, addressable as one array."""

    def __init__(self, source_dir: str | Path):
        self.source_dir = Path(source_dir)
        files = sorted(self.source_dir.glob("*.ds"))
        if not files:
            raise SmollabError(f"{self.source_dir} has no token shards (*.ds); run `smollab tokenize RECIPE` first")
        sizes = {_token_size(f) for f in files}
        if len(sizes) != 1:
            raise SmollabError(f"{self.source_dir} mixes token widths {sorted(sizes)}; delete it and run `smollab tokenize RECIPE` again")
        self.token_dtype = np.dtype(TOKEN_DTYPES[sizes.pop()])
        # np.memmap cannot map an empty file; an empty shard contributes nothing anyway.
        self._shards = [np.memmap(f, dtype=self.token_dtype, mode="r") for f in files if f.stat().st_size]
        self._starts = np.cumsum([0] + [len(s) for s in self._shards])
        self.num_docs = sum(f.with_name(f.name + ".index").stat().st_size // 8 for f in files)

    @property
    def num_tokens(self) -> int:
        return int(self._starts[-1])

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` of the concatenated shards, as int64."""
        if not 0 <= start <= stop <= self.num_tokens:
            raise IndexError(f"slice [{start}, {stop}) is outside the {self.num_tokens:,} tokens of {self.source_dir}")
        out = np.empty(stop - start, dtype=np.int64)
        shard = int(np.searchsorted(self._starts, start, side="right")) - 1
        filled = 0
        while filled < len(out):
            offset = start + filled - self._starts[shard]
            piece = self._shards[shard][offset : offset + len(out) - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
            shard += 1
        return out

    def __repr__(self) -> str:
        return f"TokenStream({self.source_dir}, {self.num_tokens:,} tokens, {self.num_docs:,} docs, {self.token_dtype})"


def load_streams(shards_dir: str | Path, names: list[str]) -> dict[str, TokenStream]:
    """One ``TokenStream`` per source name, each from ``<shards_dir>/<name>``."""
    shards_dir = Path(shards_dir)
    streams = {}
    for name in names:
        if not any((shards_dir / name).glob("*.ds")):
            raise SmollabError(f"source '{name}' has no token shards in {shards_dir / name}; run `smollab tokenize RECIPE` first")
        streams[name] = TokenStream(shards_dir / name)
        if streams[name].num_tokens == 0:
            raise SmollabError(
                f"source '{name}' has no tokens in {shards_dir / name}: every record was bad (see its summary.json); "
                f"fix data.sources.{name}.text or .template and tokenize into a new shards directory"
            )
    return streams
