from pathlib import Path

import pytest
from datatrove.executor import RayPipelineExecutor, SlurmPipelineExecutor

from smollab.curate.cli import load_curate_config
from smollab.curate.pipeline import build_stages, make_executor
from smollab.errors import SmollabError

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "curate-demo.yaml"


@pytest.mark.parametrize("kind, cls", [("slurm", SlurmPipelineExecutor), ("ray", RayPipelineExecutor)])
def test_demo_pipeline_builds_as_a_chained_cluster_job(kind, cls, tmp_path):
    _, cfg = load_curate_config(DEMO, [f"curate.executor.kind={kind}", "curate.executor.tasks=8", "curate.decontam=null"])
    previous = None
    for stage in build_stages(cfg, tmp_path):
        executor = make_executor(cfg.executor, stage, tmp_path / "logs" / stage.name, previous, "demo")
        assert isinstance(executor, cls) and executor.depends is previous
        assert executor.world_size == {"minhash_buckets": 14, "minhash_cluster": 1, "annotate": 1, "train_classifier": 1}.get(stage.name, 8)
        previous = executor
    assert [s.name for s in build_stages(cfg, tmp_path)] == [
        "filter", "minhash_signatures", "minhash_buckets", "minhash_cluster", "dedup_decontam", "annotate", "train_classifier", "score",
    ]


def test_curate_section_validates_in_a_full_recipe_and_alone(tmp_path):
    full = tmp_path / "full.yaml"
    full.write_text(
        "name: r\ndata: {sources: {web: {bundled: web_c4_samples}}}\nstages: [{name: s, until_tokens: 1e6, mixture: {web: 1.0}}]\n"
        "batch: {seq_len: 64, tokens_per_step: 512, micro_batch: 8}\n"
        "curate: {inputs: {web: {bundled: web_c4_samples}}}\n"
    )
    name, cfg = load_curate_config(full, ["curate.score.threshold=4"])
    assert name == "r" and cfg.score.threshold == 4 and cfg.annotate.rubric == "edu"
    alone = tmp_path / "alone.yaml"
    alone.write_text("name: a\ncurate: {inputs: {web: {bundled: web_c4_samples}}, annotate: {rubric: maths}}\n")
    with pytest.raises(SmollabError, match=r"alone.yaml: curate.annotate.rubric"):
        load_curate_config(alone, [])
