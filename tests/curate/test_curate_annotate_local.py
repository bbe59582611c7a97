import pytest

from curate_helpers import rows
from smollab.curate.annotate import annotate_texts
from smollab.curate.config import AnnotateConfig
from smollab.llm import RequestCache


@pytest.mark.slow
def test_real_smollm2_judge_scores_in_range_with_prefix_cache(tmp_path):
    texts = [rows("edu_wikipedia", 1)[0]["text"], rows("web_c4_samples", 1)[0]["text"]]
    cfg = AnnotateConfig(max_doc_chars=300)
    results = annotate_texts(texts, cfg, RequestCache(tmp_path / "c.jsonl"))
    for r in results:
        assert 0 <= r["score"] <= 5 and abs(sum(r["probs"]) - 1) < 1e-3 and 0 <= r["expected"] <= 5
