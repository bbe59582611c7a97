import math
from collections import Counter
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from curate_helpers import curate_config, read_curated, rows, write_jsonl
from smollab.curate.classifier import Classifier
from smollab.curate.cli import load_curate_config
from smollab.curate.config import ScoreConfig
from smollab.curate.pipeline import run_curation
from smollab.curate.report import build_report
from smollab.curate.score import KeepByScore
from smollab.errors import SmollabError
from smollab.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
# Each bundled sample plays one int_score band, as if a classifier had scored it so.
BANDS = {"web_c4_samples": 0, "math_gsm8k_train": 1, "code_thealgorithms_python": 2, "web_news_articles": 3}
SCORE = ScoreConfig(threshold=3, keep={1: 0.3, 2: 0.6}, seed=7)


def scored_documents() -> list[Document]:
    """9,158 real documents with a known int_score each (7,473 GSM8K problems in band 1, 1,164 programs in band 2)."""
    return [
        Document(text=row.get("text") or f"{row['question']}\n{row['answer']}", id=row["id"], metadata={"int_score": band})
        for name, band in BANDS.items() for row in rows(name)
    ]


def kept_ids(folder: Path, out: Path, tasks: int, workers: int, score: ScoreConfig = SCORE) -> set[str]:
    """Run the keep block over the JSONL shards in ``folder`` under datatrove's local executor."""
    pipeline = [JsonlReader(str(folder)), KeepByScore(score), JsonlWriter(str(out / "kept"))]
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(out / "logs")).run()
    return {record["id"] for record in read_curated(out / "kept")}


def test_each_band_keeps_its_fraction_within_binomial_tolerance():
    docs = scored_documents()
    block = KeepByScore(SCORE)
    kept = Counter(doc.metadata["int_score"] for doc in block.run(iter(docs)))
    size = Counter(doc.metadata["int_score"] for doc in docs)
    assert kept[0] == 0, "a band below the threshold and not in keep is dropped"
    assert kept[3] == size[3], "a band at the threshold and not in keep is kept whole"
    for band in (1, 2):
        n, fraction = size[band], SCORE.keep[band]
        assert abs(kept[band] - fraction * n) <= 4 * math.sqrt(n * fraction * (1 - fraction)), (band, kept[band], n)
        assert block.stats[f"kept_int_score_{band}"].total == kept[band]
        assert block.stats[f"dropped_int_score_{band}"].total == n - kept[band]


def test_kept_set_is_the_same_for_any_tasks_workers_and_input_order(tmp_path):
    docs = scored_documents()
    records = [{"id": d.id, "text": d.text[:300], "metadata": d.metadata} for d in docs]
    for shard in range(4):
        write_jsonl(tmp_path / "sharded" / f"{shard}.jsonl.gz", records[shard::4])
    write_jsonl(tmp_path / "reversed" / "all.jsonl.gz", records[::-1])
    in_process = {doc.id for doc in KeepByScore(SCORE).run(iter(docs))}
    assert kept_ids(tmp_path / "sharded", tmp_path / "four", tasks=4, workers=2) == in_process
    assert kept_ids(tmp_path / "reversed", tmp_path / "one", tasks=1, workers=1) == in_process
    reseeded = kept_ids(tmp_path / "reversed", tmp_path / "seed8", 1, 1, SCORE.model_copy(update={"seed": 8}))
    assert len(reseeded ^ in_process) > 1000, "the seed picks which documents of a band are kept"


def test_report_counts_kept_and_dropped_documents_per_band(corpus, tmp_path):
    cfg = curate_config(corpus, {"threshold": 3, "keep": {2: 0.5}, "batch_size": 8}, dedup=None)
    run_curation(cfg, tmp_path, log=lambda _: None)
    report = build_report(cfg, tmp_path, {})
    texts = [r["text"] for r in read_curated(corpus / "in")]
    classifier = Classifier.load(corpus / "clf")
    known = Counter(str(s) for s in classifier.int_scores(classifier.predict(texts)).tolist())
    curated = Counter(str(r["metadata"]["int_score"]) for r in read_curated(tmp_path / "curated"))
    bands = report["score"]["bands"]
    assert {band: b["scored"] for band, b in bands.items()} == known
    assert {band: b["kept"] for band, b in bands.items() if b["kept"]} == curated
    for band, b in bands.items():
        assert b["kept"] + b["dropped"] == b["scored"] and b["keep_fraction"] == cfg.score.keep_fraction(int(band))
    assert 0 < bands["2"]["kept"] < bands["2"]["scored"], bands
    assert report["funnel"][-1]["docs_out"] == sum(curated.values())


@pytest.mark.parametrize(
    "keep, expected",
    [
        ("{1: 1.5}", "band 1: keep fraction 1.5 is not in [0, 1]"),
        ("{2: -0.1}", "band 2: keep fraction -0.1 is not in [0, 1]"),
        ("{1: half}", "band 1: keep fraction 'half' is not in [0, 1]"),
        ("{x: 0.5}", "band 'x' is not an int_score"),
        ("{1.5: 0.5}", "band 1.5 is not an int_score"),
        ("{-1: 0.5}", "band -1 is not an int_score"),
    ],
)
def test_bad_keep_bands_and_fractions_are_one_line_recipe_errors(tmp_path, keep, expected):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ncurate: {{inputs: {{web: {{bundled: web_c4_samples}}}}, score: {{keep: {keep}}}}}\n")
    with pytest.raises(SmollabError) as err:
        load_curate_config(recipe, [])
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{recipe}: curate.score.keep: {expected}")


@pytest.mark.parametrize("name", ["smollm2-135m", "smollm2-360m"])
def test_small_model_recipes_train_on_dclm_curated_as_the_paper_did(name):
    path = REPO / "recipes" / f"{name}.yaml"
    _, cfg = load_curate_config(path, [])
    assert [cfg.score.keep_fraction(band) for band in range(6)] == [0.0, 0.3, 0.6, 1.0, 1.0, 1.0]
    assert cfg.annotate.rubric == "edu" and "dclm" in cfg.inputs
    assert load_recipe(path).data.sources["dclm"].files == [f"{cfg.out}/curated/*.jsonl.gz"]
