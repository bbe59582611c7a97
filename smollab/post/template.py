"""SmolLM2's chat template in one place: render conversations, and mask the tokens SFT trains on.

The template is the ChatML that SmolLM2-135M-Instruct ships (the bundled tokenizer's
``chat_template.jinja``, byte-identical, as a test checks): every turn renders as
``<|im_start|>{role}\\n{content}<|im_end|>\\n`` whatever its role, and a conversation that does not open
with a system turn gets the default system prompt. Tool use keeps that: ``tool_call`` (the assistant
calling a function) and ``tool`` (the function's result) render under their own role names. SFT trains
on what the model writes, ``assistant`` and ``tool_call`` turns (``TRAINED_ROLES``); system, user and
tool turns are context. The template has no slot for tool definitions, so none are rendered.

The mask comes from the render cut into pieces at turn boundaries: the pieces must join into the jinja
render (so they cannot drift from the template), and tokenizing them one by one must give the ids of
the whole render (what the model sees at inference). The trade-off: where a BPE merges across a
boundary (SmolLM2's does when a turn opens with two or more whitespace characters, which join the
header's newline) no mask is exact, so that raises ``TurnBoundaryMerge`` instead of guessing.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from transformers import PreTrainedTokenizerBase

from smollab.errors import SmollabError
from smollab.paths import ASSETS

# smollab.tokenizer.SMOLLM2_DIR, not imported: that module pulls in datatrove and rich (seconds per process).
SMOLLM2_CHAT_TEMPLATE = (ASSETS / "tokenizer" / "smollm2" / "chat_template.jinja").read_text(encoding="utf-8")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
DEFAULT_SYSTEM_PROMPT = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", SMOLLM2_CHAT_TEMPLATE).group(1)
TRAINED_ROLES = ("assistant", "tool_call")
CONTEXT_ROLES = ("system", "user", "tool")
ROLES = CONTEXT_ROLES + TRAINED_ROLES

Messages = list[dict[str, str]]


class TurnBoundaryMerge(SmollabError):
    """The tokenizer joins text of two turns into one token, so the assistant mask would be ambiguous."""


class MaskedTokens(NamedTuple):
    input_ids: list[int]
    labels_mask: list[int]
    """1 on the content tokens of assistant-side turns and their ``<|im_end|>``, 0 elsewhere."""


def with_chat_template(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The tokenizer carrying SmolLM2's template, set in place (any other template is replaced, so training,
    the saved checkpoint and ``chat`` agree) and returned; one without single ChatML tokens is refused."""
    for token in (IM_START, IM_END):
        if len(tokenizer(token, add_special_tokens=False)["input_ids"]) != 1:
            raise SmollabError(
                f"tokenizer {tokenizer.name_or_path}: {token} is not one token, and SmolLM2's chat template needs "
                f"{IM_START} and {IM_END} as special tokens; post-train with the smollm2 tokenizer or one smollab trained"
            )
    tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    return tokenizer


def render(messages: Messages, tokenizer: PreTrainedTokenizerBase, add_generation_prompt: bool = False) -> str:
    """The conversation as SmolLM2's template writes it, whatever template the tokenizer carries;
    ``add_generation_prompt`` appends the ``<|im_start|>assistant\\n`` a reply is generated after."""
    return tokenizer.apply_chat_template(messages, chat_template=SMOLLM2_CHAT_TEMPLATE, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def _pieces(messages: Messages) -> list[tuple[str, bool]]:
    """The render as (text, trained) pieces; a trained piece is one assistant-side turn's content plus ``<|im_end|>``."""
    pieces: list[tuple[str, bool]] = []
    context = f"{IM_START}system\n{DEFAULT_SYSTEM_PROMPT}{IM_END}\n" if messages and messages[0]["role"] != "system" else ""
    for message in messages:
        header = f"{IM_START}{message['role']}\n"
        if message["role"] in TRAINED_ROLES:
            pieces += [(context + header, False), (message["content"] + IM_END, True)]
            context = "\n"
        else:
            context += header + message["content"] + IM_END + "\n"
    return pieces + [(context, False)] if context else pieces


def assistant_mask(messages: Messages, tokenizer: PreTrainedTokenizerBase) -> MaskedTokens:
    """Token ids of the rendered conversation and its loss mask (see ``MaskedTokens``).

    ``messages`` must be a valid conversation (``conversations.check_conversation``); raises
    ``TurnBoundaryMerge`` where the tokenizer merges across a turn boundary.
    """
    pieces = _pieces(messages)
    text = "".join(piece for piece, _ in pieces)
    if text != render(messages, tokenizer):
        raise SmollabError("smollab/post/template.py: SMOLLM2_CHAT_TEMPLATE no longer renders turns as "
                           "<|im_start|>{role}\\n{content}<|im_end|>\\n; update _pieces to the new template")
    encoded = tokenizer([piece for piece, _ in pieces], add_special_tokens=False)["input_ids"]
    input_ids = [token for ids in encoded for token in ids]
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    if input_ids != whole:
        at = next((i for i, (a, b) in enumerate(zip(input_ids, whole)) if a != b), min(len(input_ids), len(whole)))
        raise TurnBoundaryMerge(
            f"the tokenizer merges text across a turn boundary into the token {tokenizer.decode(whole[at:at + 1])!r} "
            f"(token {at}), so no assistant mask is exact; strip the leading whitespace of that turn's content"
        )
    labels_mask = [int(trained) for (_, trained), ids in zip(pieces, encoded) for _ in ids]
    return MaskedTokens(input_ids, labels_mask)
