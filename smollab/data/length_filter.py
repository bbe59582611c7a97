"""``min_doc_tokens``: a long-document source made from any source, at tokenize time.

SmolLM2's context extension drew 40% of its tokens from documents of at least 8k tokens (paper
§4.6); such a source is an ordinary one with ``min_doc_tokens: 8192``. The step sits between the
reader and datatrove's ``DocumentTokenizer`` and counts each document with the same
``tokenizer.json`` (without the EOS the tokenizer appends), so "long" means long in the tokens
the model trains on. Documents below the threshold are counted per task as ``too_short`` in the
source's summary, never dropped unseen. The trade-off: a filtered source is tokenized twice
(once to measure, once to write); measuring by characters would be free but tokenizer-dependent
in a way a recipe could not state.
"""

from __future__ import annotations

import json
from collections import Counter

from datatrove.data import DocumentsPipeline
from datatrove.io import DataFolder
from datatrove.pipeline.base import PipelineStep
from tokenizers import Tokenizer

BATCH = 256


class MinTokensFilter(PipelineStep):
    """Pass on the documents of at least ``min_tokens`` tokens; write ``length_filter/<rank>.json`` with the count of the others."""

    name = "min_doc_tokens"
    type = "Filter"

    def __init__(self, tokenizer_file: str, min_tokens: int, report_folder: DataFolder):
        super().__init__()
        self.tokenizer_file = tokenizer_file
        self.min_tokens = min_tokens
        self.report_folder = report_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        tokenizer = Tokenizer.from_file(self.tokenizer_file)
        counts = Counter(kept=0, too_short=0)
        batch = []
        for document in data:
            batch.append(document)
            if len(batch) == BATCH:
                yield from self._long_ones(tokenizer, batch, counts)
                batch = []
        yield from self._long_ones(tokenizer, batch, counts)
        with self.report_folder.open(f"length_filter/{rank:05d}.json", "w") as f:
            json.dump({"min_doc_tokens": self.min_tokens, **counts}, f)

    def _long_ones(self, tokenizer: Tokenizer, batch: list, counts: Counter):
        if not batch:
            return
        encodings = tokenizer.encode_batch([d.text for d in batch], add_special_tokens=False)
        for document, encoding in zip(batch, encodings):
            verdict = "kept" if len(encoding.ids) >= self.min_tokens else "too_short"
            counts[verdict] += 1
            self.stat_update(verdict)
            if verdict == "kept":
                yield document
