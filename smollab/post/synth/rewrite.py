"""Smol-Rewrite and Smol-Summarization: real documents summarised, or rewritten concise, formal or friendly.

Documents come from a pretraining source (``synth.rewrite.source``: a bundled sample, local files or an
hf dataset), read by the same datatrove readers ``smollab tokenize`` uses, so bad records are counted
the same way. Each of the first ``n`` documents is paired with a kind drawn with the seed (a source with
fewer documents gives some documents several kinds); a long document is cut at its last paragraph or
sentence end before ``max_doc_chars``. The user turn is the instruction followed by the text, sampled at
temperature 0.2 with 256 tokens for a summary and 1024 for a rewrite, SmolTalk's settings. The
trade-off: SmolTalk rewrote texts that Qwen2.5-72B had first written from PersonaHub personas (emails,
tweets, posts, notes) plus CNN/DailyMail articles; real web pages need no generation step and are what
a user would paste, but are longer and noisier than those texts.
"""

from __future__ import annotations

import random
from collections import Counter

from smollab.errors import SmollabError
from smollab.post.synth.config import RewriteConfig, Sampling, SynthConfig
from smollab.post.synth.records import Ask, Draft, request_seed

INSTRUCTIONS = {
    "summarize": "Summarize the text below in a few sentences: keep its main points and leave out the details.",
    "concise": "Rewrite the text below so that it is more concise: keep every point that matters and cut "
               "repetition and filler.",
    "formal": "Rewrite the text below in a formal, professional register, keeping what it says.",
    "friendly": "Rewrite the text below in a warm, friendly tone, keeping what it says.",
}
_NAME = "rewrite"  # the source's name in the datatrove reader's messages


def documents(cfg: RewriteConfig) -> tuple[list[str], Counter]:
    """The first ``cfg.n`` document texts of the source, and its bad records per reason."""
    from smollab.tokenizer import corpus_texts

    bad = Counter()
    try:
        texts = list(corpus_texts([(_NAME, cfg.source)], cfg.n, bad))
    except SmollabError as err:
        raise SmollabError(str(err).replace(f"data.sources.{_NAME}.", "synth.rewrite.source.")) from None
    if not texts:
        raise SmollabError(f"synth.rewrite.source: no document could be read ({dict(bad) or 'the source is empty'}); "
                           "point it at documents with a text field")
    return texts, bad


def clip(text: str, limit: int) -> str:
    """``text`` cut at its last paragraph, line or sentence end before ``limit`` characters (hard cut if none)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    for end in ("\n\n", "\n", ". "):
        at = head.rfind(end)
        if at > limit // 2:
            return head[: at + 1].rstrip()
    return head.rstrip()


def generate(cfg: RewriteConfig, synth: SynthConfig, ask: Ask) -> list[Draft]:
    """``cfg.n`` rewrites in one stage (kinds differ only in instruction and length); notes the source's bad records."""
    texts, bad = documents(cfg)
    ask.notes["source_bad_records"] = dict(bad)
    pairs = [(doc, kind) for doc in range(len(texts)) for kind in cfg.kinds]
    random.Random(f"{synth.seed}:rewrite").shuffle(pairs)
    pairs = sorted(pairs[: cfg.n])  # document order: the shuffle only decides which (document, kind) pairs
    drafts, requests = [], []
    for i, (doc, kind) in enumerate(pairs):
        user = f"{INSTRUCTIONS[kind]}\n\n{clip(texts[doc].strip(), cfg.max_doc_chars)}"
        drafts.append(Draft("rewrite", f"rewrite-{i}", [{"role": "user", "content": user}],
                            {"kind": kind, "document": doc}))
        length = cfg.summary_max_tokens if kind == "summarize" else cfg.rewrite_max_tokens
        sampling = Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=length)
        requests.append(sampling.request(request_seed(synth.seed, "rewrite", doc, kind),
                                         messages=[{"role": "user", "content": user}]))
    for draft, reply in zip(drafts, ask("answer", requests)):
        draft.add("assistant", reply)
    return drafts


def planned_requests(cfg: RewriteConfig) -> int:
    return cfg.n
