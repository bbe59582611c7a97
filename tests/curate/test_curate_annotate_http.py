import threading
import time

import pytest

from curate_helpers import rows
from smollab.curate.annotate import annotate_texts
from smollab.curate.config import AnnotateConfig
from smollab.llm import RequestCache
from tests.openai_stub import ScriptedServer


class StubJudge(ScriptedServer):
    """The first request per document fails with 503, then it answers; counts requests and the most in flight."""

    def __init__(self):
        self.requests = self.in_flight = self.max_in_flight = 0
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        super().__init__(self.judge)

    def judge(self, path: str, body: dict):
        prompt = body["messages"][0]["content"]
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            first_time = prompt not in self.seen
            self.seen.add(prompt)
        time.sleep(0.05)
        with self.lock:
            self.in_flight -= 1
        if first_time:
            return 503
        return ("Nonsense without a score." if "UNPARSEABLE" in prompt
                else f"Reasoning.\nEducational score: {len(prompt) % 6}"), "stop"


@pytest.fixture
def stub():
    judge = StubJudge()
    yield judge
    judge.shutdown()


def test_http_backend_retries_runs_concurrently_and_caches(stub, tmp_path):
    texts = [r["text"][:500] for r in rows("web_c4_samples", 12)] + ["UNPARSEABLE page"]
    cfg = AnnotateConfig(backend="http", http={"base_url": stub.url, "concurrency": 4, "backoff_s": 0.01})
    cache = RequestCache(tmp_path / "cache.jsonl")
    results = annotate_texts(texts, cfg, cache)
    assert stub.requests == 2 * len(texts)  # each document: one 503, one retry
    assert stub.max_in_flight > 1
    assert [r["unparseable"] for r in results[:-1]] == [None] * 12 and all(0 <= r["score"] <= 5 for r in results[:-1])
    assert results[-1]["score"] is None and results[-1]["unparseable"] == "no_final_line"
    assert "Nonsense" in results[-1]["answer"]  # the raw answer is recorded

    resumed = annotate_texts(texts, cfg, RequestCache(tmp_path / "cache.jsonl"))
    assert stub.requests == 2 * len(texts)  # nothing asked twice
    assert all(r["cached"] for r in resumed)
    assert [r["score"] for r in resumed] == [r["score"] for r in results]


def test_http_backend_gives_up_with_one_clear_error(tmp_path):
    from smollab.errors import SmollabError

    cfg = AnnotateConfig(backend="http", http={"base_url": "http://127.0.0.1:9/v1", "max_retries": 1, "backoff_s": 0.01})
    with pytest.raises(SmollabError, match="unreachable"):
        annotate_texts(["a page"], cfg, RequestCache(tmp_path / "cache.jsonl"))
