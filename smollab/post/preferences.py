"""Preference pairs for DPO: the chat sources' reading, checks, held-out split and mixture, for pairs.

A record is TRL's conversational preference format: ``prompt``, ``chosen`` and ``rejected`` lists of
turns, the completions continuing the prompt. A record whose prompt is missing, null or a string (as
HuggingFaceH4/ultrafeedback_binarized stores it beside whole conversations) gives ``chosen`` and
``rejected`` as full conversations instead; their longest common prefix of turns is the prompt, which is
what TRL's ``extract_prompt`` does. The prompt must end on a user (or tool) turn and prompt + each
completion must pass the chat checks; faults are counted per reason (``PREFERENCE_REASONS``) like chat
data (``truncated`` stays 0). The trade-offs: an over-long pair is dropped, never cut, since cutting one side would bias the
comparison of the two log-probabilities; and the held-out split hashes the prompt alone, so the pairs
that share a prompt land on the same side and held-out rewards are measured on unseen prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from pydantic import Field, model_validator
from transformers import PreTrainedTokenizerBase

from smollab.data.sources import BadRecord
from smollab.post.conversations import (ChatData, SourceLocation, SourceReport, check_conversation, check_mixture,
                                        check_turns, fingerprint, load_sources)
from smollab.post.template import Messages, render
from smollab.recipe import Strict

PREFERENCE_REASONS = ("malformed", "corrupt_file", "identical_pair", "no_prompt", "unknown_role", "empty_turn",
                      "no_assistant_turn", "not_alternating", "too_long")


class PreferenceSourceConfig(SourceLocation):
    prompt: str | None = Field("prompt", description="the field holding the prompt turns; null: always take the "
                               "shared prefix of chosen and rejected")
    chosen: str = "chosen"
    rejected: str = "rejected"


class PreferenceDataConfig(Strict):
    sources: dict[str, PreferenceSourceConfig] = Field(min_length=1)
    mixture: dict[str, float] | None = Field(None, description="token share per source, summing to 1; "
                                             "default: every train pair once")
    max_length: int = Field(1024, ge=16, description="tokens of prompt + completion, the longer of the two (SmolLM2 DPO: 1024)")
    max_prompt_length: int = Field(512, ge=8, description="tokens of the prompt with its generation prompt (SmolLM2 DPO: 512)")
    heldout_fraction: float = Field(0.05, ge=0, lt=1, description="share of each source's prompts held out")
    seed: int = Field(42, description="held-out split and mixture order")

    @model_validator(mode="after")
    def _lengths_and_shares(self) -> PreferenceDataConfig:
        if self.max_prompt_length >= self.max_length:
            raise ValueError(f"max_prompt_length {self.max_prompt_length} leaves no room for a completion within "
                             f"max_length {self.max_length}; lower it below max_length")
        check_mixture(self.mixture, self.sources)
        return self


@dataclass(frozen=True)
class PreferencePair:
    source: str
    id: str
    prompt: Messages
    chosen: Messages
    rejected: Messages
    prompt_tokens: int
    """tokens of the rendered prompt, generation prompt included"""
    chosen_tokens: int
    """tokens of the rendered prompt + chosen"""
    rejected_tokens: int
    fingerprint: str
    """hash of the prompt: decides the pair's side of the held-out split"""

    @property
    def num_tokens(self) -> int:
        """Tokens one DPO step forwards for this pair (both sequences), what mixture shares count."""
        return self.chosen_tokens + self.rejected_tokens

    def record(self) -> dict:
        """The row TRL's ``DPOTrainer`` reads (conversational preference format)."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def split_shared_prompt(chosen: Messages, rejected: Messages) -> tuple[Messages, Messages, Messages]:
    """``(prompt, chosen, rejected)`` from two full conversations: the prompt is their longest common prefix of turns."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _turns(record: dict, source: str, role: str, field_name: str) -> Messages:
    """The checked turns of the record field that the source config names for ``role`` (prompt, chosen, rejected)."""
    if field_name not in record:
        raise BadRecord("malformed", f"no '{field_name}' field ({', '.join(map(str, record))}); "
                                     f"set data.sources.{source}.{role} to the field holding the {role} turns")
    turns = record[field_name]
    if isinstance(turns, str):
        raise BadRecord("malformed", f"'{field_name}' is a string; preference pairs are conversational: lists of "
                                     "{role, content} turns")
    try:
        return check_turns(turns)
    except BadRecord as bad:
        raise BadRecord(bad.reason, f"'{field_name}': {bad.detail}") from None


def _pair(record: object, source: str, ident: str, _report: SourceReport, config: PreferenceDataConfig,
          tokenizer: PreTrainedTokenizerBase) -> PreferencePair:
    if not isinstance(record, dict):
        raise BadRecord("malformed", f"expected a JSON object, got a {type(record).__name__}")
    fields = config.sources[source]
    chosen, rejected = _turns(record, source, "chosen", fields.chosen), _turns(record, source, "rejected", fields.rejected)
    explicit = fields.prompt is not None and isinstance(record.get(fields.prompt), list)
    prompt = _turns(record, source, "prompt", fields.prompt) if explicit else []
    if chosen == rejected:
        raise BadRecord("identical_pair", "chosen and rejected are the same turns")
    if not explicit:
        prompt, chosen, rejected = split_shared_prompt(chosen, rejected)
    if not prompt:
        raise BadRecord("no_prompt", "empty prompt" if explicit else "chosen and rejected share no leading turn to "
                        "take as the prompt; give a prompt field")
    if not chosen or not rejected:
        raise BadRecord("malformed", f"{'chosen' if not chosen else 'rejected'} has no turn after the prompt")
    for completion in (chosen, rejected):
        check_conversation(prompt + completion)
    if prompt[-1]["role"] not in ("user", "tool"):
        raise BadRecord("not_alternating", f"the prompt ends with a {prompt[-1]['role']} turn; the completions "
                                           "must start with the reply to a user (or tool) turn")
    prompt_tokens, chosen_tokens, rejected_tokens = (
        len(ids) for ids in tokenizer([render(prompt, tokenizer, add_generation_prompt=True),
                                       render(prompt + chosen, tokenizer), render(prompt + rejected, tokenizer)],
                                      add_special_tokens=False)["input_ids"])
    if prompt_tokens > config.max_prompt_length:
        raise BadRecord("too_long", f"the prompt takes {prompt_tokens:,} tokens > max_prompt_length {config.max_prompt_length:,}")
    if max(chosen_tokens, rejected_tokens) > config.max_length:
        raise BadRecord("too_long", f"prompt + completion takes {max(chosen_tokens, rejected_tokens):,} tokens "
                                    f"> max_length {config.max_length:,}")
    return PreferencePair(source, ident, prompt, chosen, rejected, prompt_tokens, chosen_tokens, rejected_tokens,
                          fingerprint(prompt))


def load_preferences(config: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase) -> ChatData[PreferencePair]:
    """Read, check, split and mix every preference source of ``config``; token counts use ``tokenizer``."""
    return load_sources(config, PREFERENCE_REASONS, partial(_pair, config=config, tokenizer=tokenizer))
