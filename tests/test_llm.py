"""The shared LLM client: batched local generation, both OpenAI endpoints, and the request-keyed cache."""

import json

import pytest
from transformers import AutoTokenizer

from smollab.llm import HttpClient, HttpConfig, LLMConfig, LocalClient, RequestCache, ask
from smollab.paths import ASSETS
from tests.eval.conftest import tiny_llama
from tests.openai_stub import ScriptedServer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")
    path = tmp_path_factory.mktemp("tiny-llm")
    tiny_llama(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def chat(text: str, **sampling) -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 6, **sampling}


def test_left_padded_batches_answer_as_one_request_at_a_time(tiny_model):
    requests = [chat("hi"), chat("a much longer question about the weather in spring"), {"prompt": "Once", "max_tokens": 6}]
    batched = LocalClient(LLMConfig(model=tiny_model, batch_size=3)).run(requests)
    alone = LocalClient(LLMConfig(model=tiny_model, batch_size=1))
    assert batched == [alone.run([r])[0] for r in requests]
    assert all(batched)


def test_stop_strings_cut_answers(tiny_model):
    client = LocalClient(LLMConfig(model=tiny_model))
    full = client.run([chat("hi")])[0]
    stop = full.strip()[1:3]
    assert client.run([chat("hi", stop=[stop])])[0] == full[: full.index(stop)]


class Refuses:
    """A client with the local model's cache identity that fails if it is asked anything."""

    def __init__(self, cfg: LLMConfig):
        self.id, self.chunk = f"local:{cfg.model}:{cfg.dtype}", 4

    def replies(self, requests, keys=()):
        raise AssertionError(f"asked {len(requests)} requests again")


def test_a_rerun_asks_nothing_and_a_changed_setting_asks_again(tiny_model, tmp_path):
    cfg = LLMConfig(model=tiny_model, batch_size=2)
    requests = [chat("one", temperature=0.8, top_p=0.9), chat("two", temperature=0.8, top_p=0.9), chat("one", temperature=0.8, top_p=0.9)]
    first = ask(requests, cfg, RequestCache(tmp_path / "cache.jsonl"))
    assert [r["cached"] for r in first] == [False, False, False] and first[0]["answer"] == first[2]["answer"]
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2  # the repeated request is asked once
    again = ask(requests, cfg, RequestCache(tmp_path / "cache.jsonl"), client=Refuses(cfg))
    assert [r["answer"] for r in again] == [r["answer"] for r in first] and all(r["cached"] for r in again)
    colder = ask([chat("one", temperature=0.0)], cfg, RequestCache(tmp_path / "cache.jsonl"))
    assert not colder[0]["cached"]


def test_a_line_cut_short_by_a_kill_is_asked_again(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text(json.dumps({"key": "k1", "answer": "kept"}) + "\n" + '{"key": "k2", "ans')
    cache = RequestCache(path)
    assert cache.entries["k1"]["answer"] == "kept" and "k2" not in cache.entries and cache.bad_lines == 1


def echo(path: str, body: dict) -> tuple[str, str]:
    """/chat/completions echoes the last message, /completions the prompt."""
    return ("chat:" + body["messages"][-1]["content"]) if "messages" in body else ("text:" + body["prompt"]), "stop"


def test_http_client_uses_chat_or_completions_and_the_requests_own_settings():
    stub = ScriptedServer(echo)
    try:
        client = HttpClient(HttpConfig(base_url=stub.url + "/", model="m", max_tokens=64, concurrency=2))
        answers = client.run([chat("hello", temperature=0.7), {"prompt": "<|im_start|>user\n", "stop": ["<|im_end|>"]}])
    finally:
        stub.shutdown()
    assert answers == ["chat:hello", "text:<|im_start|>user\n"]
    (chat_path, chat_body), (text_path, text_body) = sorted(stub.bodies, key=lambda b: b[0])
    assert chat_path == "/v1/chat/completions" and chat_body["temperature"] == 0.7 and chat_body["max_tokens"] == 6
    assert text_path == "/v1/completions" and text_body["max_tokens"] == 64 and text_body["stop"] == ["<|im_end|>"]
    assert chat_body["model"] == text_body["model"] == "m"
