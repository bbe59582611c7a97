"""Memory-mapped reading of one source's token shards (datatrove ``.ds`` + ``.ds.index``, nanotron's format).

A source is the concatenation of its ``.ds`` files in sorted order, documents already separated by the
EOS token datatrove wrote, so ``slice(start, stop)`` is pure index arithmetic over ``np.memmap``s: only
the requested tokens are read and nothing is copied whole. The trade-off: the stream is one fixed
order (input order); any randomness belongs to the mixture sampler that picks which slices to read.
The token width (uint16 or uint32) comes from datatrove's ``.ds.metadata`` (``tokenizer|bytes``).

A damaged shard would otherwise train silently on wrong data, so shards are checked when loaded: each
``.ds`` must hold a whole number of tokens, as many as its ``.metadata`` records and as the last
document end in its ``.index`` (uint64 end offsets, one per document), and ``load_streams`` compares
the total with the source's ``summary.json``. That reads a few bytes per file. Token ids are not
scanned at load (a corpus is terabytes); every ``slice`` instead checks the ids it returns against the
vocabulary size in ``summary.json``, a max over an array it copies anyway, so a bad id stops training
on the first batch that would have used it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smollab.errors import SmollabError

TOKEN_DTYPES = {2: np.uint16, 4: np.uint32}


def tokenize_command(shards_dir: Path) -> str:
    """The command that writes shards into ``shards_dir``: ``--out`` for a run's own ``<out>/shards``.

    Only the directory is known here, not whether it came from the recipe or from ``--out``, so the
    command always names it; a redundant ``--out`` is still the right command.
    """
    if shards_dir.name == "shards":
        return f"smollab tokenize RECIPE --out {shards_dir.parent}"
    return f"smollab tokenize RECIPE data.shards_dir={shards_dir}"


def damaged(ds_file: Path, why: str) -> SmollabError:
    return SmollabError(
        f"{ds_file}: damaged token shard ({why}); delete it and re-run `{tokenize_command(ds_file.parent.parent)}`, "
        "which re-tokenizes the missing shards"
    )


@dataclass(frozen=True)
class Shard:
    """One checked ``.ds`` file: its sizes agree with its ``.metadata`` and ``.index``."""

    path: Path
    token_dtype: np.dtype
    num_tokens: int
    num_docs: int


def check_shard(ds_file: Path) -> Shard:
    """Read a shard's companions and check its byte size against them; a mismatch is a ``damaged`` error."""
    metadata = ds_file.with_name(ds_file.name + ".metadata")
    index = ds_file.with_name(ds_file.name + ".index")
    for companion in (metadata, index):
        if not companion.exists():
            raise damaged(ds_file, f"its {companion.name} is missing")
    try:
        head, recorded = metadata.read_text().splitlines()[:2]
        width, recorded = int(head.rsplit("|", 1)[1]), int(recorded)
    except (ValueError, IndexError):
        raise damaged(ds_file, f"its {metadata.name} is not '<tokenizer>|<bytes>' then a token count") from None
    if width not in TOKEN_DTYPES:
        raise damaged(ds_file, f"its {metadata.name} gives a token width of {width} bytes, not 2 or 4")
    size = ds_file.stat().st_size
    if size % width:
        raise damaged(ds_file, f"{size:,} bytes are not a whole number of {width}-byte tokens")
    tokens = size // width
    index_size = index.stat().st_size
    if index_size % 8:
        raise damaged(ds_file, f"its {index.name} has {index_size:,} bytes, not a whole number of uint64 offsets")
    docs = index_size // 8
    last_end = int(np.fromfile(index, dtype="<u8", count=1, offset=index_size - 8)[0]) if docs else 0
    if last_end != tokens:
        raise damaged(ds_file, f"it holds {tokens:,} tokens but its {index.name} lists {docs:,} documents ending at token {last_end:,}")
    if recorded != tokens:
        raise damaged(ds_file, f"it holds {tokens:,} tokens but its {metadata.name} records {recorded:,}")
    return Shard(ds_file, np.dtype(TOKEN_DTYPES[width]), tokens, docs)


class TokenStream:
    """All tokens of one source, addressable as one array; with ``vocab_size``, every slice is id-checked."""

    def __init__(self, source_dir: str | Path, vocab_size: int | None = None):
        self.source_dir = Path(source_dir)
        self.vocab_size = vocab_size
        files = sorted(self.source_dir.glob("*.ds"))
        if not files:
            raise SmollabError(f"{self.source_dir} has no token shards (*.ds); run `{tokenize_command(self.source_dir.parent)}` first")
        shards = [check_shard(f) for f in files]
        dtypes = {s.token_dtype for s in shards}
        if len(dtypes) != 1:
            raise SmollabError(
                f"{self.source_dir} mixes token types {sorted(map(str, dtypes))}; delete it and run "
                f"`{tokenize_command(self.source_dir.parent)}` again"
            )
        self.token_dtype = dtypes.pop()
        # np.memmap cannot map an empty file; an empty shard contributes nothing anyway.
        self._files = [s.path for s in shards if s.num_tokens]
        self._shards = [np.memmap(f, dtype=self.token_dtype, mode="r") for f in self._files]
        self._starts = np.cumsum([0] + [len(s) for s in self._shards])
        self.num_docs = sum(s.num_docs for s in shards)

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
        if self.vocab_size is not None and len(out) and out.max() >= self.vocab_size:
            self._raise_bad_id(out, start)
        return out

    def _raise_bad_id(self, out: np.ndarray, start: int) -> None:
        at = int(np.argmax(out >= self.vocab_size))
        position = start + at
        shard = int(np.searchsorted(self._starts, position, side="right")) - 1
        raise damaged(
            self._files[shard],
            f"token {position - self._starts[shard]:,} has id {out[at]:,}, outside the tokenizer's {self.vocab_size:,} ids",
        )

    def __repr__(self) -> str:
        return f"TokenStream({self.source_dir}, {self.num_tokens:,} tokens, {self.num_docs:,} docs, {self.token_dtype})"


def load_streams(shards_dir: str | Path, names: list[str]) -> dict[str, TokenStream]:
    """One checked ``TokenStream`` per source name, each from ``<shards_dir>/<name>`` and its ``summary.json``."""
    shards_dir = Path(shards_dir)
    command = tokenize_command(shards_dir)
    streams = {}
    for name in names:
        source_dir = shards_dir / name
        if not any(source_dir.glob("*.ds")):
            raise SmollabError(f"source '{name}' has no token shards in {source_dir}; run `{command}` first")
        summary_file = source_dir / "summary.json"
        if not summary_file.exists():
            raise SmollabError(f"source '{name}' in {source_dir} has no summary.json: its tokenization did not finish; run `{command}`")
        summary = json.loads(summary_file.read_text())
        stream = streams[name] = TokenStream(source_dir, vocab_size=summary["vocab_size"])
        if stream.num_tokens != summary["tokens"]:
            raise SmollabError(
                f"{source_dir}: the shards hold {stream.num_tokens:,} tokens but its summary.json records {summary['tokens']:,} "
                f"(a shard was removed, added or replaced since); re-run `{command}`"
            )
        if stream.num_tokens == 0:
            raise SmollabError(
                f"source '{name}' has no tokens in {source_dir}: every record was bad or filtered out (see its summary.json); "
                f"fix data.sources.{name}.text, .template or .where and re-run `{command}`"
            )
    return streams
