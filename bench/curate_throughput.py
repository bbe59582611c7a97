"""Throughput of smollab curation vs the same datatrove steps configured by hand (2-core CPU).

Measures documents/s of (1) heuristic filters + 4-stage MinHash dedup run through
`smollab.curate.pipeline.run_curation`, against the identical datatrove blocks (readers, Gopher
repetition/quality, C4, FineWeb quality, MinHash signature/buckets/cluster/filter, JSONL writers)
listed by hand, and (2) classifier scoring through smollab's `ScoreDocuments` block against a plain
`SentenceTransformer.encode` + head loop; plus (3) local-backend annotation documents/s
(SmolLM2-135M-Instruct, logits mode). Medians of --runs runs; each pair of peers alternates its runs
in one invocation, so both see the same background load, and filters + dedup also report the median
of the per-pair speed ratios (the VM's run-to-run spread is ±10%).
Run:  .venv/bin/python bench/curate_throughput.py [--runs 7]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from smollab.curate.annotate import annotate_texts
from smollab.curate.classifier import Classifier, train_classifier
from smollab.curate.config import AnnotateConfig, ClassifierConfig, CurateConfig
from smollab.curate.pipeline import run_curation
from smollab.curate.score import ScoreDocuments
from smollab.llm import RequestCache
from smollab.paths import ASSETS

INPUTS = {"web_c4": ("web_c4_samples", 150), "news": ("web_news_articles", 80)}
N_DOCS = sum(limit for _, limit in INPUTS.values())


def smollab_filters_dedup(out: Path) -> None:
    cfg = CurateConfig.model_validate({
        "inputs": {name: {"bundled": b, "limit": n} for name, (b, n) in INPUTS.items()},
        "decontam": None, "annotate": None, "classifier": None, "score": None,
        "executor": {"tasks": 1, "workers": 1},
    })
    run_curation(cfg, out, log=lambda _: None)


def hand_filters_dedup(out: Path) -> None:
    readers = [JsonlReader(str(ASSETS / "pretrain"), glob_pattern=f"{b}.jsonl.gz", limit=n) for b, n in INPUTS.values()]
    mh = MinhashConfig()
    stages = [
        [*readers, GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
         FineWebQualityFilter(), JsonlWriter(str(out / "filtered"))],
        [JsonlReader(str(out / "filtered")), MinhashDedupSignature(output_folder=str(out / "sigs"), config=mh)],
        [MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=mh)],
        [MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove"), config=mh)],
        [JsonlReader(str(out / "filtered")), MinhashDedupFilter(input_folder=str(out / "remove")), JsonlWriter(str(out / "deduped"))],
    ]
    for i, pipeline in enumerate(stages):
        tasks = mh.num_buckets if i == 2 else 1
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(out / f"logs{i}")).run()


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            fn(Path(tmp))
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = {}
    # warm-up (spaCy, tokenizer loading) so neither peer pays it in its first timed run
    timed(hand_filters_dedup, 1)
    # interleaved runs, so both peers see the same background load on a shared machine
    peers = {"filters_dedup_smollab": smollab_filters_dedup, "filters_dedup_hand": hand_filters_dedup}
    runs = {name: [] for name in peers}
    for _ in range(args.runs):
        for name, fn in peers.items():
            runs[name] += timed(fn, 1)
    for name, times in runs.items():
        results[name] = {"docs": N_DOCS, "median_s": statistics.median(times), "docs_per_s": N_DOCS / statistics.median(times), "runs_s": times}
    pair_ratios = [hand / ours for ours, hand in zip(runs["filters_dedup_smollab"], runs["filters_dedup_hand"])]
    results["filters_dedup_speed_ratio"] = {"median": statistics.median(pair_ratios), "pairs": pair_ratios}

    import gzip

    texts = [json.loads(line)["text"] for line in gzip.open(ASSETS / "pretrain" / "web_c4_samples.jsonl.gz", "rt")][:128]
    with tempfile.TemporaryDirectory() as tmp:
        clf = train_classifier(texts[:20], [float(i % 2) * 3 for i in range(20)], ClassifierConfig(max_length=128, epochs=5), 5, 3)
        clf.save(Path(tmp) / "clf")
        block = ScoreDocuments(Path(tmp) / "clf", batch_size=64)
        Classifier.load(Path(tmp) / "clf").embedder  # warm the file cache; each timed run then loads its own copy

        def via_block():  # the block loads the classifier and its embedder in run(), once per task
            list(block.run(iter(Document(text=t, id=str(i)) for i, t in enumerate(texts))))

        def by_hand():  # the same load, then encode + head
            loaded = Classifier.load(Path(tmp) / "clf")
            emb = loaded.embedder.encode(texts, batch_size=64, convert_to_numpy=True)
            loaded.predict_embeddings(emb)

        scorers = {"score_smollab_block": via_block, "score_hand": by_hand}
        score_runs = {name: [] for name in scorers}
        for _ in range(args.runs):  # interleaved, as above
            for name, fn in scorers.items():
                score_runs[name] += timed(lambda _tmp, fn=fn: fn(), 1)
        for name, times in score_runs.items():
            results[name] = {"docs": len(texts), "median_s": statistics.median(times), "docs_per_s": len(texts) / statistics.median(times), "runs_s": times}

        cfg = AnnotateConfig(max_doc_chars=600)
        sample = texts[:4]
        start = time.perf_counter()
        annotate_texts(sample, cfg, RequestCache(Path(tmp) / "cache.jsonl"))
        elapsed = time.perf_counter() - start
        results["annotate_local_135m_logits"] = {"docs": len(sample), "seconds_incl_model_load": elapsed, "docs_per_s": len(sample) / elapsed}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
