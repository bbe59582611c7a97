"""Build the curation pipeline from a ``CurateConfig``: datatrove block lists, one executor per stage.

Every step, classifier training included, is a datatrove block, so the same stage list runs on a
``LocalPipelineExecutor`` (default), a ``SlurmPipelineExecutor`` chain (``depends=``) or a
``RayPipelineExecutor``; smollab adds blocks, not a scheduler. Each stage logs to
``OUT/logs/<stage>`` and datatrove's completion markers there make a re-run skip finished tasks,
so an interrupted run resumes where it stopped. Document stages hand over through JSONL shards
(``OUT/stages/<stage>``), which costs one extra write/read per stage but lets MinHash re-read the
exact same shards and lets any stage be inspected or re-run on its own.

Layout of OUT: stages/ (intermediate shards, minhash/), annotations/ (cache + annotated sample),
classifier/, decontam/ (removed ids per task), curated/ (the result, ``*.jsonl.gz``),
logs/, curation_report.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.executor.base import PipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from smollab.curate import dedup
from smollab.curate.annotate import Annotate
from smollab.curate.classifier import train_classifier
from smollab.curate.config import CurateConfig, ScoreConfig
from smollab.curate.decontam import Decontaminate
from smollab.curate.filters import FunnelCount, heuristic_blocks, token_counter
from smollab.curate.read import read_blocks
from smollab.curate.rubrics import RUBRICS
from smollab.curate.score import KeepByScore, ScoreDocuments
from smollab.errors import SmollabError
from smollab.executors import ExecutorConfig, executor_for, tasks_done


@dataclass
class Stage:
    """One executor's worth of work: a name, a block-list factory (built only when run) and its task count."""

    name: str
    blocks: Callable[[], list[PipelineStep]]
    tasks: int


class TrainClassifier(PipelineStep):
    """Trains the classifier on the annotated documents streamed in; unparseable ones are counted, not used."""

    name = "🧠 train classifier"
    type = "🧠 - TRAINER"

    def __init__(self, cfg: CurateConfig, out_dir: str):
        super().__init__()
        self.cfg, self.out_dir = cfg, out_dir

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> None:
        texts, targets = [], []
        for doc in data:
            annotation = doc.metadata["annotation"]
            if annotation["score"] is None:
                self.stat_update("skipped_unparseable")
                continue
            self.stat_update("used")
            texts.append(doc.text)
            # logits-mode annotations carry the judge's expected score, a finer target than its argmax
            targets.append(annotation.get("expected", annotation["score"]))
        rubric = RUBRICS[self.cfg.annotate.rubric]
        info = {"rubric": rubric.name, "annotations": len(texts)}
        with self.track_time(unit="fit"):
            threshold = (self.cfg.score or ScoreConfig()).threshold
            classifier = train_classifier(texts, targets, self.cfg.classifier, rubric.max_score, threshold, info)
        classifier.save(Path(self.out_dir))


def decontamination_items(tasks: list[str] | None):
    """(task, item_id, text) for the questions and gold answers of the vendored eval tasks."""
    try:
        from smollab.eval.tasks import decontamination_items as eval_items
    except ImportError as err:
        raise SmollabError(
            f"curate.decontam needs smollab.eval.tasks.decontamination_items ({err}); set curate.decontam: null to skip it"
        ) from None
    wanted = set(tasks) if tasks else None
    return [item for item in eval_items() if wanted is None or item[0] in wanted]


def build_stages(cfg: CurateConfig, out: Path) -> list[Stage]:
    """The ordered stages; the last document stage writes ``OUT/curated``."""
    tasks = cfg.executor.tasks
    work = out / "stages"
    doc_stages = ["filter"] + (["dedup_decontam"] if cfg.dedup or cfg.decontam else []) + (["score"] if cfg.score else [])
    folder = {name: out / "curated" if name == doc_stages[-1] else work / name for name in doc_stages}

    def writer(name: str) -> JsonlWriter:
        return JsonlWriter(str(folder[name]))

    def filter_blocks() -> list[PipelineStep]:
        heuristics = heuristic_blocks(cfg.filters) if cfg.filters else []
        return [*read_blocks(cfg.inputs), token_counter(), FunnelCount("read"), *heuristics, FunnelCount("filters"), writer("filter")]

    stages = [Stage("filter", filter_blocks, tasks)]
    if cfg.dedup:
        minhash = work / "minhash"
        stages += [
            Stage("minhash_signatures", lambda: dedup.signature_stage(cfg.dedup, folder["filter"], minhash), tasks),
            Stage("minhash_buckets", lambda: dedup.buckets_stage(cfg.dedup, minhash), cfg.dedup.num_buckets),
            Stage("minhash_cluster", lambda: dedup.cluster_stage(cfg.dedup, minhash), 1),
        ]
    if "dedup_decontam" in folder:

        def dedup_decontam_blocks() -> list[PipelineStep]:
            blocks: list[PipelineStep] = [JsonlReader(str(folder["filter"]))]
            if cfg.dedup:
                blocks += [dedup.filter_block(work / "minhash"), FunnelCount("dedup")]
            if cfg.decontam:
                items = decontamination_items(cfg.decontam.tasks)
                blocks += [Decontaminate(items, str(out / "decontam"), cfg.decontam.n_gram), FunnelCount("decontam")]
            return blocks + [writer("dedup_decontam")]

        stages.append(Stage("dedup_decontam", dedup_decontam_blocks, tasks))
    scored_input = folder[doc_stages[-2]] if cfg.score else None
    if cfg.classifier and not cfg.classifier.pretrained:
        annotated = out / "annotations" / "docs"
        stages += [
            Stage("annotate", lambda: [JsonlReader(str(scored_input)), Annotate(cfg.annotate, str(out / "annotations")), JsonlWriter(str(annotated))], 1),
            Stage("train_classifier", lambda: [JsonlReader(str(annotated)), TrainClassifier(cfg, str(out / "classifier"))], 1),
        ]
    if cfg.score:
        classifier_dir = cfg.classifier.pretrained or str(out / "classifier")
        stages.append(Stage("score", lambda: [
            JsonlReader(str(scored_input)), ScoreDocuments(classifier_dir, cfg.score.batch_size),
            KeepByScore(cfg.score), FunnelCount("score"), writer("score"),
        ], tasks))
    return stages


def make_executor(cfg: ExecutorConfig, stage: Stage, logging_dir: Path, depends: PipelineExecutor | None, job_name: str) -> PipelineExecutor:
    """The datatrove executor for one stage, its job named ``<job_name>-<stage>``; Slurm and Ray ones chain on ``depends``."""
    return executor_for(cfg, stage.blocks(), stage.tasks, logging_dir, f"{job_name}-{stage.name}", depends)


def is_complete(out: Path, stage: Stage) -> bool:
    return tasks_done(out / "logs" / stage.name, stage.tasks)


def all_complete(cfg: CurateConfig, out: Path) -> bool:
    return all(is_complete(Path(out), stage) for stage in build_stages(cfg, Path(out)))


def run_curation(cfg: CurateConfig, out: Path, name: str = "curate", log: Callable[[str], None] = print) -> dict[str, float]:
    """Run (or resume) every stage; returns seconds spent per stage in this invocation.

    Local stages run one after the other in this process. Slurm/Ray stages are chained with
    ``depends`` and launched from the last one; the report is written by a later invocation
    once they have all completed.
    """
    out = Path(out)
    stages = build_stages(cfg, out)
    seconds: dict[str, float] = {}
    if cfg.executor.kind == "local":
        for stage in stages:
            if is_complete(out, stage):
                log(f"{stage.name}: complete, skipped")
                continue
            start = time.perf_counter()
            make_executor(cfg.executor, stage, out / "logs" / stage.name, None, name).run()
            seconds[stage.name] = time.perf_counter() - start
            log(f"{stage.name}: done in {seconds[stage.name]:.1f}s")
        return seconds
    executor = None
    for stage in stages:
        executor = make_executor(cfg.executor, stage, out / "logs" / stage.name, executor, name)
    executor.run()
    return seconds
