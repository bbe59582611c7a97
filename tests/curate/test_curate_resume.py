import pytest

from curate_helpers import curate_config, read_curated
from smollab.curate import classifier as classifier_module
from smollab.curate.pipeline import run_curation
from smollab.curate.report import build_report


def test_interrupted_pipeline_resumes_to_the_same_output(corpus, tmp_path, monkeypatch):
    cfg = curate_config(corpus, {"threshold": 3, "batch_size": 8})
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
