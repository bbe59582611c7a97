"""Session fixture for the curation pipeline tests: a small real corpus and a classifier trained once."""

import pytest

from curate_helpers import rows, write_jsonl
from smollab.curate.classifier import train_classifier
from smollab.curate.config import ClassifierConfig


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """``in/a.jsonl.gz`` (20 news articles + 3 repeats), ``in/b.jsonl.gz`` (20 GSM8K problems), ``clf/``:
    a classifier trained on other rows of the same two sources (news → 1, maths → 4)."""
    root = tmp_path_factory.mktemp("corpus")
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
