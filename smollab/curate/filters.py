"""Step 2, heuristic filters: datatrove's Gopher, C4 and FineWeb filters, plus two small blocks.

smollab adds no filter logic of its own: each datatrove filter is wrapped in ``ScopedFilter`` so
that inputs marked ``filters: false`` (code, which these prose heuristics would wrongly reject)
pass through, counted as ``exempt``; per-reason drop counts come from datatrove's own stats.
``FunnelCount`` sits between steps and records documents and tokens, which is what the
curation report's funnel is built from. Tokens are counted once, after reading, with the SmolLM2
tokenizer; a filter that edits text (C4 drops boilerplate lines) is not re-counted, a small
overestimate that saves one tokenisation per step. The filters of a stage share one word split per
text (``SharedWordSplits``), which is where the stage's time goes.
"""

from __future__ import annotations

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.tokens import TokensCounter
from datatrove.utils.typeshelper import Languages
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

from smollab.curate.config import FiltersConfig
from smollab.errors import SmollabError
from smollab.paths import ASSETS

HEURISTICS = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}
TOKENIZER_FILE = ASSETS / "tokenizer" / "smollm2" / "tokenizer.json"


class ScopedFilter(BaseFilter):
    """Applies a datatrove filter to every document except those of inputs exempt from heuristics."""

    type = "🔻 - FILTER"

    def __init__(self, step: str, inner: BaseFilter):
        self.name = step  # before super().__init__, which names the stats after the block
        super().__init__()
        self.step, self.inner = step, inner

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("heuristics_exempt"):
            self.stat_update("exempt")
            return True
        return self.inner.filter(doc)


class SharedWordSplits(WordTokenizer):
    """A word tokenizer that splits each text once for all the filters that are handed it.

    Gopher repetition, Gopher quality and FineWeb quality each split the whole document into words
    with spaCy, half of a curation run's time on web text, so stock datatrove splits every surviving
    document three times. Passed as those filters' ``language`` (datatrove's ``load_word_tokenizer``
    accepts a ``WordTokenizer`` in its place), this one remembers the last text and its words: a
    document is split once, and a filter that edited the text (C4 drops boilerplate lines) gets a
    fresh split, so every filter sees exactly the words the stock one would. The trade-off is one
    document's words held in memory; sentence splits (C4's, line by line) are passed through.
    """

    def __init__(self, language: str):
        super().__init__(language)
        self._text: str | None = None
        self._words: list[str] = []

    def word_tokenize(self, text: str) -> list[str]:
        if text is not self._text and text != self._text:
            self._text, self._words = text, load_word_tokenizer(self.language).word_tokenize(text)
        return list(self._words)  # a copy: no filter can alter what the next one reads

    def sent_tokenize(self, text: str) -> list[str]:
        return load_word_tokenizer(self.language).sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return load_word_tokenizer(self.language).span_tokenize(text)


class FunnelCount(PipelineStep):
    """Counts documents and tokens passing this point; the report reads these counters in order."""

    type = "📏 - FUNNEL"

    def __init__(self, step: str):
        self.name = step
        super().__init__()
        self.step = step

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            self.stat_update("docs")
            self.stat_update("tokens", value=doc.metadata.get("token_count", 0))
            self.stat_update(f"source_{doc.metadata.get('source', 'unknown')}")
            yield doc


def token_counter() -> TokensCounter:
    return TokensCounter(tokenizer_name_or_path=str(TOKENIZER_FILE), batch_size=256)


def heuristic_blocks(cfg: FiltersConfig) -> list[PipelineStep]:
    """The enabled filters, each constructed with the recipe's kwargs and sharing one word split per
    text and language (``SharedWordSplits``); bad kwargs name the field."""
    blocks: list[PipelineStep] = []
    splits: dict[str, SharedWordSplits] = {}
    for key, cls in HEURISTICS.items():
        kwargs = getattr(cfg, key)
        if kwargs is None:
            continue
        language = kwargs.get("language", Languages.english)
        shared = splits.setdefault(language, SharedWordSplits(language))
        try:
            blocks.append(ScopedFilter(key, cls(**{**kwargs, "language": shared})))
        except TypeError as err:
            raise SmollabError(f"curate.filters.{key}: {err}; see datatrove's {cls.__name__} for valid options") from None
    return blocks
