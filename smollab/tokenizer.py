"""The tokenizer: SmolLM2's own (bundled, a directory or a hub id), or a byte-level BPE trained per run.

A trained tokenizer copies SmolLM2's conventions (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``
at ids 0, 1, 2; digits split one by one; byte-level pre-tokenizer and decoder; the same bos/eos/pad
roles and ChatML template), so every later stage treats both kinds alike. The trade-off: training
reads the corpus through the same datatrove readers as tokenization (bad records are skipped the same
way) but holds the BPE statistics in memory, so ``max_docs_per_source`` bounds its cost. Datatrove
needs a ``tokenizer.json`` file, so every tokenizer is resolved to one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, NamedTuple

import typer
from datatrove.utils.logging import logger as datatrove_logger
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from smollab.data.sources import BUNDLED, reader_for
from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.recipe import Recipe, SourceConfig, TokenizerTrainConfig, load_recipe

SMOLLM2 = "smollm2"
SMOLLM2_DIR = ASSETS / "tokenizer" / SMOLLM2
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# The roles SmolLM2's tokenizer gives its special tokens (see assets/tokenizer/smollm2).
ROLES = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}
TRAINING_RECORD = "training.json"


class RecipeTokenizer(NamedTuple):
    tokenizer: PreTrainedTokenizerBase
    file: str
    """The ``tokenizer.json`` that datatrove's ``DocumentTokenizer`` loads."""
    name: str
    """What the recipe names: ``smollm2``, a directory, a hub id, or the trained directory."""


def tokenizer_file(source: str) -> Path:
    """The ``tokenizer.json`` behind ``smollm2``, an HF tokenizer directory or a hub id."""
    if source == SMOLLM2:
        return SMOLLM2_DIR / "tokenizer.json"
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "tokenizer.json").exists():
            raise SmollabError(f"tokenizer directory {path} has no tokenizer.json; point at a fast (tokenizers) tokenizer")
        return path / "tokenizer.json"
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(source, "tokenizer.json"))
        except Exception as err:  # network, auth, missing file: all mean "cannot get it"
            raise SmollabError(f"tokenizer '{source}': cannot fetch tokenizer.json from the hub ({type(err).__name__}); "
                               "check the id and your connection, or give a local directory") from None
    raise SmollabError(f"tokenizer '{source}' not found: give '{SMOLLM2}', an HF tokenizer directory, or a hub id (org/name)")


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    """A transformers tokenizer for ``smollm2``, an HF directory or a hub id."""
    return AutoTokenizer.from_pretrained(tokenizer_file(source).parent)


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE with SmolLM2's special tokens and save it as a transformers directory."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        chat_template=(SMOLLM2_DIR / "chat_template.jinja").read_text(),
        clean_up_tokenization_spaces=False,
        **ROLES,
    )
    tokenizer.save_pretrained(out_dir)
    return AutoTokenizer.from_pretrained(out_dir)


def corpus_texts(sources: list[tuple[str, SourceConfig]], max_docs: int | None, bad_records: Counter) -> Iterator[str]:
    """The texts of several sources in order (each capped at ``max_docs``), counting bad records."""
    # datatrove logs every file it opens; a tokenizer's corpus is read outside any pipeline task.
    datatrove_logger.disable("datatrove")
    try:
        for name, config in sources:
            reader = reader_for(name, config, limit=max_docs)
            for document in reader.run():
                yield document.text
            bad_records.update(reader.bad_counts)
    finally:
        datatrove_logger.enable("datatrove")


def train_on_sources(
    sources: list[tuple[str, SourceConfig]],
    vocab_size: int,
    out_dir: Path,
    max_docs: int | None,
    on_document: Callable[[], None] | None = None,
) -> tuple[PreTrainedTokenizerBase, dict]:
    """Train on recipe-style sources and write ``training.json`` (what it was trained on) last."""
    bad_records: Counter[str] = Counter()
    documents = 0

    def counted() -> Iterator[str]:
        nonlocal documents
        for text in corpus_texts(sources, max_docs, bad_records):
            documents += 1
            if on_document:
                on_document()
            yield text

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(counted(), vocab_size, out_dir)
    if documents == 0:
        raise SmollabError(f"no documents to train the tokenizer on ({sum(bad_records.values())} bad records); check the corpus and its text field")
    record = {
        "settings": _training_settings(sources, vocab_size, max_docs),
        "vocab_size": len(tokenizer),
        "documents": documents,
        "bad_records": dict(sorted(bad_records.items())),
        "tokenizer_sha256": file_sha256(out_dir / "tokenizer.json"),
    }
    (out_dir / TRAINING_RECORD).write_text(json.dumps(record, indent=1))
    return tokenizer, record


def _training_settings(sources: list[tuple[str, SourceConfig]], vocab_size: int, max_docs: int | None) -> dict:
    """What a trained tokenizer depends on; a recipe whose settings differ must not reuse it."""
    return {
        "vocab_size": vocab_size,
        "max_docs_per_source": max_docs,
        "sources": {name: config.model_dump(exclude_defaults=True, exclude={"max_epochs"}) for name, config in sources},
    }


def recipe_corpus(recipe: Recipe, train: TokenizerTrainConfig) -> list[tuple[str, SourceConfig]]:
    names = train.sources or list(recipe.data.sources)
    for name in names:
        if name not in recipe.data.sources:
            raise SmollabError(f"tokenizer.train.sources: unknown source '{name}'; use names from data.sources ({', '.join(recipe.data.sources)})")
    return [(name, recipe.data.sources[name]) for name in names]


def tokenizer_for_recipe(recipe: Recipe) -> RecipeTokenizer:
    """The recipe's tokenizer: trained once under ``<out>/tokenizer`` if ``tokenizer.train`` is set, else loaded."""
    train = recipe.tokenizer.train
    if train is None:
        return RecipeTokenizer(load_tokenizer(recipe.tokenizer.source), str(tokenizer_file(recipe.tokenizer.source)), recipe.tokenizer.source)
    out_dir = recipe.out_dir / "tokenizer"
    sources = recipe_corpus(recipe, train)
    record_path = out_dir / TRAINING_RECORD
    if record_path.exists():
        settings = json.loads(record_path.read_text())["settings"]
        wanted = _training_settings(sources, train.vocab_size, train.max_docs_per_source)
        if settings != wanted:
            changed = ", ".join(k for k in wanted if settings.get(k) != wanted[k])
            raise SmollabError(
                f"{out_dir} was trained with other tokenizer.train settings ({changed} changed); "
                "delete that directory to retrain, or set `out` to a new run directory"
            )
        tokenizer = AutoTokenizer.from_pretrained(out_dir)
    else:
        tokenizer, _ = train_on_sources(sources, train.vocab_size, out_dir, train.max_docs_per_source)
    return RecipeTokenizer(tokenizer, str(out_dir / "tokenizer.json"), str(out_dir))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


SAMPLE_TEXT = (
    "SmolLM2 was trained on 11T tokens of FineWeb-Edu, DCLM and The Stack.\n"
    "def add(a, b):\n    return a + b  # 12 + 30 = 42"
)


def _corpus_item(item: str, text: str, template: str | None) -> list[tuple[str, SourceConfig]]:
    """A ``--corpus`` entry: a bundled sample, a recipe (its tokenizer sources), or files/globs."""
    if (BUNDLED / f"{item}.jsonl.gz").exists():
        return [(item, SourceConfig(bundled=item, text=text, template=template))]
    if item.endswith((".yaml", ".yml")):
        recipe = load_recipe(item)
        train = recipe.tokenizer.train or TokenizerTrainConfig()
        return [
            (name, config.model_copy(update={"limit": min(config.limit or train.max_docs_per_source, train.max_docs_per_source)}))
            for name, config in recipe_corpus(recipe, train)
        ]
    return [(item, SourceConfig(files=[item], text=text, template=template))]


def train(
    corpus: Annotated[
        list[str],
        typer.Option("--corpus", "-c", help="bundled sample name, .jsonl/.jsonl.gz/.parquet file or glob, or a recipe YAML (trains on its sources); repeat for several"),
    ],
    out: Annotated[Path, typer.Option(help="directory to write the tokenizer to (transformers format)")],
    vocab_size: Annotated[int, typer.Option(min=512, help="vocabulary size, special tokens included")] = TokenizerTrainConfig.model_fields["vocab_size"].default,
    max_docs: Annotated[int | None, typer.Option(help="read at most this many documents per corpus entry")] = None,
    text: Annotated[str, typer.Option(help="record field holding the text (files and bundled samples)")] = "text",
    template: Annotated[str | None, typer.Option(help="format string over record fields instead of --text, e.g. '{question}\\n{answer}'")] = None,
) -> None:
    """Train a byte-level BPE with SmolLM2's special tokens (<|endoftext|>, <|im_start|>, <|im_end|> = 0, 1, 2).

    Writes a transformers tokenizer directory plus training.json (settings, documents, bad records).

    Example: smollab tokenizer train --corpus edu_wikipedia --corpus web_c4_samples --vocab-size 8192 --out runs/tok
    """
    console = Console(stderr=True)
    sources = [source for item in corpus for source in _corpus_item(item, text, template)]
    with Progress(
        SpinnerColumn(), TextColumn(f"training BPE (vocab {vocab_size:,}) on {len(sources)} source(s)"),
        TextColumn("{task.completed:,} documents read"), TimeElapsedColumn(), console=console,
    ) as progress:
        task = progress.add_task("read")
        tokenizer, record = train_on_sources(sources, vocab_size, out, max_docs, lambda: progress.advance(task))
    bad = ", ".join(f"{reason} {n:,}" for reason, n in record["bad_records"].items()) or "none"
    console.print(
        f"vocab {record['vocab_size']:,} from {record['documents']:,} documents (bad records: {bad}) → {out} "
        f"(record: {out / TRAINING_RECORD})"
    )


def show(
    tokenizer: Annotated[str, typer.Argument(help=f"'{SMOLLM2}', an HF tokenizer directory, or a hub id")] = SMOLLM2,
    text: Annotated[str, typer.Option(help="sample text to tokenize")] = SAMPLE_TEXT,
) -> None:
    """Show a tokenizer: vocabulary size, special tokens with their ids, and how it splits a sample text.

    Example: smollab tokenizer show runs/tok --text 'def f(x): return 2 * x'
    """
    console = Console()
    tok = load_tokenizer(tokenizer)
    console.print(f"[bold]{tokenizer}[/]: vocabulary of {len(tok):,} tokens")
    roles = {}
    for role in ROLES:
        roles.setdefault(getattr(tok, role), []).append(role.removesuffix("_token"))
    table = Table("id", "special token", "role")
    for token_id, added in sorted(tok.added_tokens_decoder.items()):
        if added.special:
            table.add_row(str(token_id), added.content, ", ".join(roles.get(added.content, [])))
    console.print(table)
    ids = tok(text, add_special_tokens=False).input_ids
    pieces = Text()
    for i, token_id in enumerate(ids):
        pieces.append(tok.decode([token_id]), style="on grey23" if i % 2 else "on dark_blue")
    console.print(f"{len(ids)} tokens for {len(text)} characters:")
    console.print(pieces)
    console.print(f"ids: {ids}", soft_wrap=True)
