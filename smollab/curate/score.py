"""Step 7, scoring and thresholding as datatrove blocks: every document gets ``score`` and ``int_score``.

``ScoreDocuments`` embeds documents in batches (the embedder is loaded lazily inside the worker,
so only the small head travels when a pipeline is shipped to other processes or nodes) and writes
the paper's two fields into metadata; ``KeepThreshold`` keeps ``int_score ≥ threshold``. Keeping
them separate lets a user score without filtering (``threshold: 0``) and lets the histogram count
every scored document, not only the kept ones.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.batching import batched

from smollab.curate.classifier import Classifier


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


class KeepThreshold(BaseFilter):
    """Keeps documents whose ``int_score`` reaches the threshold (FineWeb-Edu keeps ≥ 3)."""

    name = "✂️ threshold"

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return doc.metadata["int_score"] >= self.threshold or (False, "below_threshold")
