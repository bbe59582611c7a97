import random

from curate_helpers import read_curated, rows, write_jsonl
from smollab.curate.config import CurateConfig
from smollab.curate.pipeline import run_curation


def _edit(text: str, rng: random.Random) -> str:
    """A small edit: change a handful of words, as a scraper's boilerplate or a typo would."""
    words = text.split()
    for i in rng.sample(range(len(words)), k=max(1, len(words) // 100)):
        words[i] = words[i].upper()
    return " ".join(words) + " Share this article."


def test_planted_near_duplicates_and_exact_copies_are_removed(tmp_path):
    rng = random.Random(0)
    originals = [r for r in rows("web_news_articles") if len(r["text"].split()) > 300][:30]
    records = [{"id": f"orig-{i}", "text": r["text"]} for i, r in enumerate(originals)]
    records += [{"id": f"near-{i}", "text": _edit(originals[i]["text"], rng)} for i in range(0, 10)]
    records += [{"id": f"copy-{i}", "text": originals[i]["text"]} for i in range(10, 15)]
    rng.shuffle(records)
    write_jsonl(tmp_path / "in" / "docs.jsonl.gz", records)
    cfg = CurateConfig.model_validate({
        "inputs": {"news": {"files": [str(tmp_path / "in" / "*.jsonl.gz")]}},
        "filters": None, "decontam": None, "annotate": None, "classifier": None, "score": None,
        "executor": {"tasks": 1, "workers": 1},
    })
    run_curation(cfg, tmp_path / "out", log=lambda _: None)
    kept = read_curated(tmp_path / "out" / "curated")
    assert len(kept) == 30, sorted(d["id"] for d in kept)
    # one document per planted cluster survives, and no unrelated original is lost
    for i in range(30):
        group = {f"news/orig-{i}", f"news/near-{i}", f"news/copy-{i}"}
        assert len(group & {d["id"] for d in kept}) == 1, i
