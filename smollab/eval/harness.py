"""The model adapter: any causal LM behind lm-eval's three calls.

``loglikelihood``, ``loglikelihood_rolling`` and ``generate_until`` take and return the same
values as lm-evaluation-harness's ``LM`` (pairs of strings in, ``(logprob, is_greedy)`` out), and
split context/continuation tokens the way lm-eval does, so scores line up item by item.
It is faster than a plain forward pass per request because requests sharing a context (the
choices of one question) run the context once: the context and all its continuations are packed
into one row under an attention mask that keeps the choices apart (about half the tokens lm-eval
runs on multiple-choice tasks, in matrices as large as its own), and the vocabulary projection
plus log-softmax is applied only at the continuation positions. The trade-offs: attention over a
packed row costs more than over separate short rows (small next to the matmuls at these lengths),
and a continuation longer than ``max_length`` minus its context cuts the shared context for all
choices of that item, where lm-eval would cut each request on its own.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from smollab import pretrained
from smollab.errors import SmollabError

Pair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class GenerationRequest:
    context: str
    until: tuple[str, ...] = ()
    max_new_tokens: int = 256


class SmolLM:
    """A causal LM and its tokenizer, scored in length-sorted batches with padding masked out."""

    def __init__(self, model, tokenizer, *, batch_size: int = 8, max_length: int = 2048,
                 chat_template: bool = False, name: str = "in-memory"):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
        self.chat_template = chat_template
        self.name = name
        eos = tokenizer.eos_token_id
        self.prefix_token = eos if eos is not None else tokenizer.bos_token_id
        self.pad_token = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.prefix_token

    @classmethod
    def load(cls, spec: str, *, dtype: torch.dtype = torch.float32, **kwargs) -> "SmolLM":
        model, tokenizer = pretrained.load(spec, dtype=dtype)
        return cls(model.eval(), tokenizer, name=str(spec), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- prompts ---------------------------------------------------------------------------
    def format(self, context: str) -> str:
        """The context as the model sees it: wrapped as one user turn when ``chat_template`` is set."""
        return self.format_chat([{"role": "user", "content": context}]) if self.chat_template else context

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """A conversation in the tokenizer's chat template, up to the opening of the assistant's next turn.
        Multi-turn tasks (mt_bench) use it whether or not ``chat_template`` is set: a chat has no plain form."""
        if not self.tokenizer.chat_template:
            raise SmollabError(f"{self.name}: the tokenizer has no chat template, which --chat-template and mt_bench "
                               "need; evaluate a chat model (e.g. a smollab sft export) or drop them.")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> Pair:
        """lm-eval's split: trailing spaces move to the continuation; its tokens are those of the
        whole string past the context's tokens (so BPE merges at the boundary match lm-eval)."""
        spaces = len(context) - len(context.rstrip(" "))
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            return [self.prefix_token], self.encode(continuation)
        context_tokens = self.encode(context)
        return context_tokens, self.encode(context + continuation)[len(context_tokens):]

    # ---- lm-eval's three calls -------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        return self.score_tokens([self.encode_pair(c, x) for c, x in requests])

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each whole text, in disjoint windows of ``max_length``
        predicted tokens, each conditioned on as many preceding tokens as fit."""
        pairs, owner = [], []
        for i, text in enumerate(texts):
            tokens = self.encode(text)
            for start in range(0, len(tokens), self.max_length):
                target = tokens[start:start + self.max_length]
                room = self.max_length - len(target) + 1
                context = tokens[max(0, start - room):start] if start else [self.prefix_token]
                pairs.append((context, target))
                owner.append(i)
        totals = [0.0] * len(texts)
        for i, (logprob, _) in zip(owner, self.score_tokens(pairs)):
            totals[i] += logprob
        return totals

    @torch.inference_mode()
    def score_tokens(self, pairs: Sequence[Pair]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), continuation is the greedy one) per token pair.

        Pairs are grouped by context; groups run longest packed row first, ``batch_size`` contexts
        per forward (see ``_score_batch``)."""
        if any(not continuation for _, continuation in pairs):
            raise SmollabError("a loglikelihood request has an empty continuation; every choice needs some text.")
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (context, _) in enumerate(pairs):
            groups[tuple(context)].append(i)
        order = sorted(groups.items(), key=lambda g: -(len(g[0]) + sum(len(pairs[i][1]) for i in g[1])))
        results: list[tuple[float, bool] | None] = [None] * len(pairs)
        for b in range(0, len(order), self.batch_size):
            batch = order[b:b + self.batch_size]
            for i, result in self._score_batch(batch, pairs):
                results[i] = result
        return results  # type: ignore[return-value]

    def _score_batch(self, batch, pairs):
        """One forward for a batch of contexts, each packed with all its continuations.

        Row layout: ``context ⊕ c1[:-1] ⊕ c2[:-1] ⊕ …``; a continuation attends to the whole
        context and causally to itself (never to its sibling choices) and takes the positions that
        follow the context, so each sees exactly what it would see after its context alone. The
        hidden state of the last context token predicts every continuation's first token.
        """
        decoder, head = self.model.get_decoder(), self.model.get_output_embeddings()
        device = self.device
        rows, layouts = [], []
        for context, members in batch:
            longest = max(len(pairs[i][1]) for i in members)
            ids = list(context)[-max(1, self.max_length - longest + 1):]
            context_len = len(ids)
            positions, segments, spans = list(range(context_len)), [0] * context_len, []
            for k, i in enumerate(members, start=1):
                tail = pairs[i][1][:-1]
                spans.append((i, len(ids)))
                ids += tail
                positions += range(context_len, context_len + len(tail))
                segments += [k] * len(tail)
            rows.append((ids, positions, segments))
            layouts.append((context_len, spans))
        width = max(len(ids) for ids, _, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad_token, device=device)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        segment = torch.full((len(rows), width), -1, device=device)
        for r, (ids, positions, segments) in enumerate(rows):
            input_ids[r, :len(ids)] = torch.tensor(ids, device=device)
            position_ids[r, :len(ids)] = torch.tensor(positions, device=device)
            segment[r, :len(ids)] = torch.tensor(segments, device=device)
        # Rows that pack a single continuation are plain causal sequences padded on the right, which no real
        # token attends to: no mask lets SDPA take its causal kernel instead of a dense T×T mask (8k-token passkey
        # prompts: memory linear in T, not quadratic).
        single = all(len(members) == 1 for _, members in batch)
        hidden = decoder(input_ids=input_ids, position_ids=position_ids,
                         attention_mask=None if single else _packed_mask(segment)).last_hidden_state
        states, targets = [], []
        for r, (context_len, spans) in enumerate(layouts):
            for i, begin in spans:
                target = pairs[i][1]
                states += [hidden[r, context_len - 1:context_len], hidden[r, begin:begin + len(target) - 1]]
                targets.append((i, target))
        logprobs = F.log_softmax(head(torch.cat(states)).float(), dim=-1)
        out, offset = [], 0
        for i, target in targets:
            lp = logprobs[offset:offset + len(target)]
            target_ids = torch.tensor(target, device=device)
            picked = lp.gather(1, target_ids[:, None]).squeeze(1)
            out.append((i, (float(picked.sum()), bool((lp.argmax(-1) == target_ids).all()))))
            offset += len(target)
        return out

    @torch.inference_mode()
    def generate_until(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy continuations, cut at the first stop sequence (or EOS, or ``max_new_tokens``).

        Prompts are left-padded and batched longest first among requests with the same settings."""
        results: list[str | None] = [None] * len(requests)
        by_settings: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            by_settings[(r.until, r.max_new_tokens)].append(i)
        for (until, max_new), members in by_settings.items():
            encoded = {i: self.encode(requests[i].context)[-max(1, self.max_length - max_new):] for i in members}
            ranked = sorted(members, key=lambda i: -len(encoded[i]))
            for b in range(0, len(ranked), self.batch_size):
                chunk = ranked[b:b + self.batch_size]
                for i, text in zip(chunk, self._greedy([encoded[i] for i in chunk], until, max_new)):
                    results[i] = text
        return results  # type: ignore[return-value]

    def _greedy(self, prompts: list[list[int]], until: tuple[str, ...], max_new: int) -> list[str]:
        device = self.device
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_token] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        cache = DynamicCache()
        generated = [[] for _ in prompts]
        done = [False] * len(prompts)
        eos = self.tokenizer.eos_token_id
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        step_ids = ids
        for _ in range(max_new):
            logits = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True, logits_to_keep=1).logits
            nxt = logits[:, -1].argmax(-1)
            for r, token in enumerate(nxt.tolist()):
                if done[r]:
                    continue
                if token == eos:
                    done[r] = True
                    continue
                generated[r].append(token)
                if until and any(s in self.tokenizer.decode(generated[r][-32:]) for s in until):
                    done[r] = True
            if all(done):
                break
            step_ids = nxt[:, None]
            positions = positions[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        texts = [self.tokenizer.decode(g, skip_special_tokens=True) for g in generated]
        return [_cut(t, until) for t in texts]


def _cut(text: str, until: tuple[str, ...]) -> str:
    ends = [text.find(s) for s in until if s and s in text]
    return text[:min(ends)] if ends else text


def _packed_mask(segment: torch.Tensor) -> torch.Tensor:
    """(batch, 1, T, T) boolean attention mask of packed rows (True = attend).

    ``segment`` is 0 for context tokens, k for the k-th continuation, -1 for padding. A query
    attends to keys of the context or of its own segment that come no later in the row; padding
    attends to itself only, so no row is fully masked.
    """
    index = torch.arange(segment.shape[1], device=segment.device)
    causal = index[None, :, None] >= index[None, None, :]
    key, query = segment[:, None, :], segment[:, :, None]
    visible = causal & (key >= 0) & ((key == 0) | (key == query))
    return (visible | torch.eye(segment.shape[1], dtype=torch.bool, device=segment.device))[:, None]
