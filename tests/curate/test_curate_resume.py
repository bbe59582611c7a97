import pytest

from curate_helpers import read_curated, rows, write_jsonl
from smollab.curate import classifier as classifier_module
from smollab.curate.classifier import train_classifier
from smollab.curate.config import ClassifierConfig, CurateConfig
from smollab.curate.pipeline import run_curation
from smollab.curate.report import build_report


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    web = rows("web_news_articles", 40)
    math = rows("math_gsm8k_train", 40)
    write_jsonl(root / "in" / "a.jsonl.gz", [{"id": r["id"], "text": r["text"]} for r in web[:20] + web[:3]])
    write_jsonl(root / "in" / "b.jsonl.gz", [{"id": r["id"], "text": f"{r['question']}\n{r['answer']}"} for r in math[:20]])
    clf = train_classifier(
        [r["text"] for r in web[20:]] + [f"{r['question']}\n{r['answer']}" for r in math[20:]], [1.0] * 20 + [4.0] * 20,
        ClassifierConfig(max_length=32, epochs=50), max_score=5, threshold=3,
    )
    clf.save(root / "clf")
    return root


def _config(root):
    return CurateConfig.model_validate({
        "inputs": {"mixed": {"files": [str(root / "in" / "*.jsonl.gz")], "filters": False}},
        "decontam": None, "annotate": None,
        "classifier": {"pretrained": str(root / "clf")},
        "score": {"threshold": 3, "batch_size": 8},
        "executor": {"tasks": 2, "workers": 1},
    })


def test_interrupted_pipeline_resumes_to_the_same_output(corpus, tmp_path, monkeypatch):
    cfg = _config(corpus)
    run_curation(cfg, tmp_path / "whole", log=lambda _: None)
    expected = read_curated(tmp_path / "whole" / "curated")
    assert 0 < len(expected) < 40

    calls = {"n": 0}
    real_predict = classifier_module.Classifier.predict

    def crash_midway(self, texts, batch_size=64):
        calls["n"] += 1
        if calls["n"] == 4:  # rank 0 has finished; rank 1 dies mid-stream
            raise KeyboardInterrupt("simulated kill")
        return real_predict(self, texts, batch_size)

    monkeypatch.setattr(classifier_module.Classifier, "predict", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        run_curation(cfg, tmp_path / "resumed", log=lambda _: None)
    monkeypatch.setattr(classifier_module.Classifier, "predict", real_predict)
    assert (tmp_path / "resumed" / "logs" / "score" / "completions" / "00000").exists()
    assert not (tmp_path / "resumed" / "logs" / "score" / "completions" / "00001").exists()

    lines = []
    seconds = run_curation(cfg, tmp_path / "resumed", log=lines.append)
    assert "filter: complete, skipped" in lines and list(seconds) == ["score"]
    assert read_curated(tmp_path / "resumed" / "curated") == expected
    assert build_report(cfg, tmp_path / "resumed", {})["funnel"] == build_report(cfg, tmp_path / "whole", {})["funnel"]
