"""Step 3, near-duplicate removal with datatrove's multi-stage MinHash, configured from the recipe.

The four datatrove stages are used as they are: signatures per task, LSH buckets (one task per
band), one clustering task, then a filter pass that re-reads the same shards in the same order
(MinHash removal ids are positions within a task's stream, which is why ``executor.tasks`` must
not change between a run and its resume). Exact copies are near-duplicates with similarity 1, so
no separate exact-dedup pass is run; the trade-off is that the kept copy of a cluster is whichever
datatrove's clustering keeps, not, say, the longest.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader

from smollab.curate.config import DedupConfig


def minhash_config(cfg: DedupConfig) -> MinhashConfig:
    return MinhashConfig(
        n_grams=cfg.n_grams, num_buckets=cfg.num_buckets, hashes_per_bucket=cfg.hashes_per_bucket, seed=cfg.seed
    )


def signature_stage(cfg: DedupConfig, docs: Path, work: Path) -> list[PipelineStep]:
    return [JsonlReader(str(docs)), MinhashDedupSignature(output_folder=str(work / "signatures"), config=minhash_config(cfg))]


def buckets_stage(cfg: DedupConfig, work: Path) -> list[PipelineStep]:
    return [
        MinhashDedupBuckets(
            input_folder=str(work / "signatures"), output_folder=str(work / "buckets"), config=minhash_config(cfg)
        )
    ]


def cluster_stage(cfg: DedupConfig, work: Path) -> list[PipelineStep]:
    return [
        MinhashDedupCluster(
            input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=minhash_config(cfg)
        )
    ]


def filter_block(work: Path) -> MinhashDedupFilter:
    """Drops the documents the clustering stage marked; must follow a reader of the signed shards."""
    return MinhashDedupFilter(input_folder=str(work / "remove_ids"))
