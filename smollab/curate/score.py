"""Step 7, scoring and keeping as datatrove blocks: every document gets ``score`` and ``int_score``.

``ScoreDocuments`` embeds documents in batches (the embedder is loaded lazily inside the worker,
so only the small head travels when a pipeline is shipped to other processes or nodes) and writes
the paper's two fields into metadata; ``KeepByScore`` keeps each ``int_score`` band whole, not at
all, or a fraction of it (``score.keep``), as SmolLM2 did for DCLM. Keeping them separate lets a
user score without filtering (``threshold: 0``) and lets the histogram count every scored
document, not only the kept ones.
"""

from __future__ import annotations

from pathlib import Path

import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.batching import batched

from smollab.curate.classifier import Classifier
from smollab.curate.config import ScoreConfig


class ScoreDocuments(PipelineStep):
    """Adds ``metadata.score`` (float) and ``metadata.int_score`` = round(clip(score, 0, max))."""

    name = "🎯 score"
    type = "🎯 - SCORER"

    def __init__(self, classifier_dir: str | Path, batch_size: int = 64):
        super().__init__()
        self.classifier_dir, self.batch_size = str(classifier_dir), batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        classifier = Classifier.load(Path(self.classifier_dir))
        for batch in batched(data, self.batch_size):
            with self.track_time(unit="batch"):
                scores = classifier.predict([doc.text for doc in batch], self.batch_size)
            for doc, score, int_score in zip(batch, scores, classifier.int_scores(scores)):
                doc.metadata["score"] = round(float(score), 4)
                doc.metadata["int_score"] = int(int_score)
                self.stat_update(f"int_score_{int_score}")
                yield doc


class KeepByScore(BaseFilter):
    """Keeps a document with its band's ``ScoreConfig.keep_fraction``, decided by a hash of (seed, id).

    The decision is a pure function of the document, not a draw from a shared random generator, so
    the kept set is the same for any number of tasks or workers, any input order, and a resumed run;
    the cost is that a band keeps a binomial count around fraction × size rather than exactly that
    many. Kept documents are counted per band (``kept_int_score_<b>``), dropped ones by datatrove
    (``dropped_int_score_<b>``).
    """

    name = "✂️ keep"

    def __init__(self, cfg: ScoreConfig):
        super().__init__()
        self.cfg = cfg

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        band = doc.metadata["int_score"]
        if keep_draw(doc.id, self.cfg.seed) < self.cfg.keep_fraction(band):
            self.stat_update(f"kept_int_score_{band}")
            return True
        return False, f"int_score_{band}"


def keep_draw(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the document id and the seed (< fraction means kept)."""
    return xxhash.xxh64_intdigest(doc_id, seed=seed) / 2**64
