import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curate_helpers import rows
from smollab.curate.annotate import AnnotationCache, annotate_texts
from smollab.curate.config import AnnotateConfig


class StubJudge:
    """An OpenAI-compatible server on 127.0.0.1: first request per document fails with 503, then answers."""

    def __init__(self):
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with stub.lock:
                    stub.requests += 1
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    first_time = prompt not in stub.seen
                    stub.seen.add(prompt)
                time.sleep(0.05)
                with stub.lock:
                    stub.in_flight -= 1
                if first_time:
                    self.send_response(503)
                    self.end_headers()
                    return
                answer = "Nonsense without a score." if "UNPARSEABLE" in prompt else f"Reasoning.\nEducational score: {len(prompt) % 6}"
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stub():
    judge = StubJudge()
    yield judge
    judge.server.shutdown()


def test_http_backend_retries_runs_concurrently_and_caches(stub, tmp_path):
    texts = [r["text"][:500] for r in rows("web_c4_samples", 12)] + ["UNPARSEABLE page"]
    cfg = AnnotateConfig(backend="http", http={"base_url": stub.url, "concurrency": 4, "backoff_s": 0.01})
    cache = AnnotationCache(tmp_path / "cache.jsonl")
    results = annotate_texts(texts, cfg, cache)
    assert stub.requests == 2 * len(texts)  # each document: one 503, one retry
    assert stub.max_in_flight > 1
    assert [r["unparseable"] for r in results[:-1]] == [None] * 12 and all(0 <= r["score"] <= 5 for r in results[:-1])
    assert results[-1]["score"] is None and results[-1]["unparseable"] == "no_final_line"
    assert "Nonsense" in results[-1]["answer"]  # the raw answer is recorded

    resumed = annotate_texts(texts, cfg, AnnotationCache(tmp_path / "cache.jsonl"))
    assert stub.requests == 2 * len(texts)  # nothing asked twice
    assert all(r["cached"] for r in resumed)
    assert [r["score"] for r in resumed] == [r["score"] for r in results]


def test_http_backend_gives_up_with_one_clear_error(tmp_path):
    from smollab.errors import SmollabError

    cfg = AnnotateConfig(backend="http", http={"base_url": "http://127.0.0.1:9/v1", "max_retries": 1, "backoff_s": 0.01})
    with pytest.raises(SmollabError, match="unreachable"):
        annotate_texts(["a page"], cfg, AnnotationCache(tmp_path / "cache.jsonl"))
