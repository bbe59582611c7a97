"""The one LLM client: a local transformers model or an OpenAI-compatible server, behind a request cache.

Curation's annotator (a judge), ``smollab synth`` (a generator) and MT-Bench's judge all ask a model
for text. They share this module: a *request* is a plain dict — ``messages`` (a chat) or ``prompt``
(raw text, for MagPie's pre-query prefix) plus ``max_tokens``, ``temperature``, ``top_p``, ``stop`` —
and a client turns a list of requests into a list of answers. Each answer is a :class:`Reply` that
also says whether the model was cut off at ``max_tokens`` (the server's ``finish_reason: length``, or no
end-of-turn token among a local model's new tokens), which a generator must know to drop half answers.

- :class:`HttpClient` speaks ``/chat/completions`` and ``/completions`` (vLLM, TGI, SGLang, any
  OpenAI-compatible server) with ``concurrency`` threads, retries on 429/5xx/connection errors with
  exponential back-off, and one error line naming the recipe field. urllib + threads, not an SDK:
  the work is I/O-bound and nothing needs installing.
- :class:`LocalClient` runs anything :func:`smollab.pretrained.load` accepts, in left-padded batches
  of ``batch_size``. Sampling is seeded per batch from the requests' own keys, so the same requests in
  the same batches give the same answers; the cache is what makes a rerun free, not the seed.
- :func:`ask` puts a :class:`RequestCache` in front of either: answers are appended to a JSONL keyed
  by a hash of (client id, request), so an interrupted job resumes without paying for a request twice,
  and a changed model, prompt or sampling setting never reuses a stale answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import Field

from smollab.errors import SmollabError
from smollab.schema import Strict


class HttpConfig(Strict):
    """An OpenAI-compatible server (vLLM, TGI, SGLang)."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="server root; /chat/completions or /completions is appended")
    model: str = Field("default", description="model name the server expects")
    api_key_env: str | None = Field(None, description="environment variable holding the API key, if any")
    concurrency: int = Field(16, ge=1, description="requests in flight")
    max_retries: int = Field(5, ge=0, description="retries on connection errors, 429 and 5xx")
    backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles on each retry")
    timeout_s: float = Field(120.0, gt=0)
    max_tokens: int = Field(512, ge=1, description="answer length when a request does not set its own")
    temperature: float = Field(0.0, ge=0, description="sampling temperature when a request does not set its own")


class LLMConfig(Strict):
    """Which model answers: a local transformers model or an OpenAI-compatible server."""

    backend: Literal["local", "http"] = "local"
    model: str = Field("smollm2-135m-instruct", description="local backend: anything smollab.pretrained.load accepts")
    batch_size: int = Field(4, ge=1, description="local backend: requests generated together (left-padded)")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="local backend: weights' dtype")
    seed: int = Field(0, description="local backend: sampling seed, mixed with each batch's request keys")
    http: HttpConfig = HttpConfig()


class RequestCache:
    """Append-only JSONL of answers keyed by a hash of their request; safe across threads."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        self.bad_lines = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.bad_lines += 1  # a line cut short by a kill: that request is simply asked again
        self._lock = threading.Lock()

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha1("\x00".join(parts).encode()).hexdigest()

    def put(self, key: str, entry: dict) -> None:
        entry = {"key": key, **entry}
        with self._lock, self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
            self.entries[key] = entry


class Reply(NamedTuple):
    text: str
    truncated: bool
    """generation stopped at ``max_tokens``, not at the end of the turn or a ``stop`` string"""


def request_key(client_id: str, request: dict) -> str:
    return RequestCache.key(client_id, json.dumps(request, sort_keys=True, ensure_ascii=False))


class HttpClient:
    """``concurrency`` requests in flight to an OpenAI-compatible server; ``field`` names its recipe section."""

    RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}

    def __init__(self, cfg: HttpConfig, field: str = "http"):
        self.cfg, self.field = cfg, field
        self.root = cfg.base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise SmollabError(f"{field}.api_key_env: ${cfg.api_key_env} is not set; export the key")
            self.headers["Authorization"] = f"Bearer {key}"
        self.retries = 0
        self.id = f"http:{self.root}:{cfg.model}"

    def _body(self, request: dict) -> tuple[str, dict]:
        body = {"model": self.cfg.model, "max_tokens": self.cfg.max_tokens, "temperature": self.cfg.temperature}
        body.update({k: v for k, v in request.items() if v is not None})
        return ("/chat/completions" if "messages" in request else "/completions"), body

    def reply(self, request: dict) -> Reply:
        path, body = self._body(request)
        url, data = self.root + path, json.dumps(body).encode()
        delay = self.cfg.backoff_s
        for attempt in range(self.cfg.max_retries + 1):
            try:
                http_request = urllib.request.Request(url, data=data, headers=self.headers, method="POST")
                with urllib.request.urlopen(http_request, timeout=self.cfg.timeout_s) as response:
                    choice = json.loads(response.read())["choices"][0]
                text = (choice["message"]["content"] if "messages" in request else choice["text"]) or ""
                return Reply(text, choice.get("finish_reason") == "length")
            except urllib.error.HTTPError as err:
                if err.code not in self.RETRYABLE or attempt == self.cfg.max_retries:
                    raise SmollabError(f"LLM server {url} answered HTTP {err.code}; check {self.field}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if attempt == self.cfg.max_retries:
                    raise SmollabError(f"LLM server {url} unreachable ({err}); start it or fix {self.field}.base_url") from None
            except (KeyError, IndexError, TypeError, json.JSONDecodeError):
                raise SmollabError(f"LLM server {url} sent a reply without choices[0]; is {self.field}.base_url an OpenAI-compatible /v1 root?") from None
            self.retries += 1
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def replies(self, requests: Sequence[dict], keys: Sequence[str] = ()) -> list[Reply]:
        with ThreadPoolExecutor(self.cfg.concurrency) as pool:
            return list(pool.map(self.reply, requests))

    def run(self, requests: Sequence[dict], keys: Sequence[str] = ()) -> list[str]:
        return [reply.text for reply in self.replies(requests, keys)]

    @property
    def chunk(self) -> int:
        return self.cfg.concurrency * 4


class LocalClient:
    """A local causal LM answering requests in left-padded batches (CPU, or the GPU when there is one)."""

    def __init__(self, cfg: LLMConfig):
        import torch

        from smollab.post.template import with_chat_template
        from smollab.pretrained import DTYPES, load

        self.cfg, self.torch = cfg, torch
        self.model, tokenizer = load(cfg.model, dtype=DTYPES[cfg.dtype])
        self.tokenizer = with_chat_template(tokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        ends = self.model.generation_config.eos_token_id
        ends = self.tokenizer.eos_token_id if ends is None else ends
        self.end_ids = torch.tensor([ends] if isinstance(ends, int) else list(ends), device=self.device)
        self.id = f"local:{cfg.model}:{cfg.dtype}"
        self.chunk = cfg.batch_size

    def render(self, request: dict) -> str:
        if "messages" in request:
            return self.tokenizer.apply_chat_template(request["messages"], tokenize=False, add_generation_prompt=True)
        return request["prompt"]

    def _generate(self, requests: Sequence[dict], seed: int) -> list[Reply]:
        torch, first = self.torch, requests[0]
        batch = self.tokenizer([self.render(r) for r in requests], return_tensors="pt", padding=True,
                               add_special_tokens=False).to(self.device)
        temperature = first.get("temperature") or 0.0
        sampling = dict(do_sample=True, temperature=temperature, top_p=first.get("top_p") or 1.0, top_k=0) \
            if temperature > 0 else dict(do_sample=False)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=first.get("max_tokens") or 256,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new = out[:, batch.input_ids.shape[1]:]
        ended = torch.isin(new, self.end_ids).any(dim=1).tolist()  # a row that finished holds its end token
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        replies = []
        for text, request, stopped in zip(texts, requests, ended):
            cut = _cut_at_stop(text, request.get("stop"))
            replies.append(Reply(cut, not stopped and len(cut) == len(text)))
        return replies

    def replies(self, requests: Sequence[dict], keys: Sequence[str] = ()) -> list[Reply]:
        """Replies in request order; requests with the same sampling settings share a batch."""
        answers: list[Reply | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            settings = json.dumps({k: r.get(k) for k in ("max_tokens", "temperature", "top_p")}, sort_keys=True)
            groups.setdefault(settings, []).append(i)
        for members in groups.values():
            for begin in range(0, len(members), self.cfg.batch_size):
                chunk = members[begin : begin + self.cfg.batch_size]
                label = "".join(keys[i] if keys else str(i) for i in chunk)
                seed = int(RequestCache.key(str(self.cfg.seed), label)[:8], 16)
                for i, reply in zip(chunk, self._generate([requests[i] for i in chunk], seed)):
                    answers[i] = reply
        return answers  # type: ignore[return-value]

    def run(self, requests: Sequence[dict], keys: Sequence[str] = ()) -> list[str]:
        return [reply.text for reply in self.replies(requests, keys)]


def _cut_at_stop(text: str, stop: Sequence[str] | str | None) -> str:
    for s in [stop] if isinstance(stop, str) else stop or ():
        if s in text:
            text = text[: text.index(s)]
    return text


def make_client(cfg: LLMConfig, field: str) -> HttpClient | LocalClient:
    """The client ``cfg`` names; ``field`` (e.g. ``synth.llm``) is where error lines point."""
    return LocalClient(cfg) if cfg.backend == "local" else HttpClient(cfg.http, f"{field}.http")


def client_id(cfg: LLMConfig) -> str:
    """The client's cache identity, known without loading a model."""
    if cfg.backend == "local":
        return f"local:{cfg.model}:{cfg.dtype}"
    return f"http:{cfg.http.base_url.rstrip('/')}:{cfg.http.model}"


def ask(requests: Sequence[dict], cfg: LLMConfig, cache: RequestCache, *, field: str = "llm",
        client: HttpClient | LocalClient | None = None,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """``{"answer", "cached", "truncated"}`` per request, in order; only requests missing from ``cache`` reach
    the model (see :class:`Reply` for ``truncated``).

    The client is built only when something is missing, so a fully cached rerun loads no model.
    ``progress(n)`` is called as each chunk of ``n`` answers arrives.
    """
    ident = client.id if client is not None else client_id(cfg)
    keys = [request_key(ident, r) for r in requests]
    todo = [keys.index(k) for k in dict.fromkeys(keys) if k not in cache.entries]
    if todo:
        client = client or make_client(cfg, field)
        for begin in range(0, len(todo), client.chunk):
            chunk = todo[begin : begin + client.chunk]
            for i, reply in zip(chunk, client.replies([requests[i] for i in chunk], [keys[i] for i in chunk])):
                cache.put(keys[i], {"answer": reply.text, "truncated": reply.truncated})
            if progress:
                progress(len(chunk))
    fresh = {keys[i] for i in todo}
    return [{"answer": cache.entries[k]["answer"], "cached": k not in fresh,
             "truncated": cache.entries[k].get("truncated", False)} for k in keys]
