"""Where datatrove pipelines run: the ``executor`` block of ``curate:`` and ``data:``, and the executor it builds.

Curation and tokenization hand a block list and a task count to ``executor_for``, which returns
datatrove's ``LocalPipelineExecutor``, ``SlurmPipelineExecutor`` or ``RayPipelineExecutor`` built from the
recipe's settings; smollab schedules nothing itself. Datatrove's completion markers
(``<logging_dir>/completions/<rank>``) make a re-run skip finished tasks on every executor, so resume is
the same command again. Datatrove is imported when an executor is built, not when a recipe is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from smollab.schema import Strict

if TYPE_CHECKING:
    from datatrove.executor.base import PipelineExecutor
    from datatrove.pipeline.base import PipelineStep


class SlurmConfig(Strict):
    partition: str = "cpu"
    time: str = "24:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    venv_path: str | None = Field(None, description="activate this venv in the job script")
    sbatch_args: dict[str, str] = {}


class RayConfig(Strict):
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2


class ExecutorConfig(Strict):
    """Where the datatrove stages run; never change ``tasks`` between a run and its resume."""

    kind: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(2, ge=1, description="shards of the read/filter/score stages")
    workers: int = Field(2, ge=1, description="local: tasks run at once (1 = in this process)")
    slurm: SlurmConfig = SlurmConfig()
    ray: RayConfig = RayConfig()


def executor_for(
    cfg: ExecutorConfig, pipeline: list[PipelineStep], tasks: int, logging_dir: Path, job_name: str,
    depends: PipelineExecutor | None = None, local: type | None = None,
) -> PipelineExecutor:
    """The datatrove executor running ``pipeline`` as ``tasks`` tasks; Slurm and Ray ones chain on ``depends``.

    ``local`` replaces ``LocalPipelineExecutor`` (a subclass that logs differently).
    """
    from datatrove.executor import LocalPipelineExecutor, RayPipelineExecutor, SlurmPipelineExecutor

    if cfg.kind == "local":
        local = local or LocalPipelineExecutor
        return local(pipeline, tasks=tasks, workers=max(1, min(cfg.workers, tasks)), logging_dir=str(logging_dir))
    if cfg.kind == "slurm":
        s = cfg.slurm
        return SlurmPipelineExecutor(
            pipeline, tasks=tasks, time=s.time, partition=s.partition, cpus_per_task=s.cpus_per_task,
            mem_per_cpu_gb=s.mem_per_cpu_gb, job_name=job_name, venv_path=s.venv_path,
            sbatch_args=dict(s.sbatch_args), logging_dir=str(logging_dir), depends=depends,
        )
    return RayPipelineExecutor(
        pipeline, tasks=tasks, workers=cfg.workers, logging_dir=str(logging_dir), depends=depends,
        cpus_per_task=cfg.ray.cpus_per_task, mem_per_cpu_gb=cfg.ray.mem_per_cpu_gb,
    )


def tasks_done(logging_dir: Path, tasks: int) -> bool:
    """Whether all ``tasks`` tasks logging to ``logging_dir`` left their completion marker."""
    done = Path(logging_dir) / "completions"
    return done.is_dir() and len(list(done.iterdir())) >= tasks
