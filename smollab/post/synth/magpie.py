"""MagPie (MagPie-Ultra in SmolTalk): an aligned model writes the user's query itself, then answers it.

The query comes from a raw completion of the *pre-query prompt*: the conversation so far rendered by the
chat template, cut where the next user turn's text would begin (for SmolLM2's ChatML and a system prompt:
``<|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n``). It is derived by rendering the conversation
plus a marker user message and cutting at the marker, never hard-coded, so any chat template works; the
answer is an ordinary chat request. A later turn continues the whole conversation the same way. The
category system prompt (MagPie-Ultra's 11 categories and weights, prompts in our words) steers both the
query and the answer, and is not kept in the record, so SFT sees the template's default system prompt.
The trade-off: the pre-query prompt is rendered locally, so with an http server the recipe must give the
server model's template (``synth.chat_template``) when it is not ChatML; and MagPie-Ultra's logits
processor (no markdown header or bold as the first token) is left out, the OpenAI API having no hook
for it.
"""

from __future__ import annotations

import functools
import random

from smollab.errors import SmollabError
from smollab.post.synth.config import MagpieConfig, Sampling, SynthConfig
from smollab.post.synth.records import Ask, Draft, live, request_seed
from smollab.post.template import SMOLLM2_CHAT_TEMPLATE, Messages

_NARRATIVE = ("Answer in clear, flowing prose, as concisely as the question allows; use lists or bold text only "
              "when the user asks for them.")
# MagPie-Ultra's category weights [SmolTalk's magpie_ultra_v1 pipeline]; the system prompts are ours.
_ROLES: dict[str, tuple[float, str]] = {
    "information-seeking": (0.05, "You are an assistant that answers factual questions about any subject "
                                  "accurately, explaining what matters and why."),
    "reasoning": (0.125, "You are an assistant that works through logic puzzles, arguments and tricky questions "
                         "step by step, pointing out where a line of reasoning fails."),
    "planning": (0.05, "You are an assistant that helps people plan projects, trips and events, turning vague "
                       "goals into concrete, ordered steps."),
    "editing": (0.10, "You are an editor: users give you text to improve, and you make it clearer and more correct "
                      "while keeping the author's voice, saying briefly what you changed."),
    "coding": (0.125, "You are a programming assistant that writes, explains and debugs code in any language, "
                      "with short, correct examples."),
    "math": (0.125, "You are a mathematics assistant that solves problems from arithmetic to proofs and explains "
                    "each step so a student can follow."),
    "role-playing": (0.10, "You are a creative partner for role-play: you take on the character or setting the "
                           "user describes and stay in it."),
    "data-analysis": (0.125, "You are a data analyst who helps users understand datasets, statistics and charts "
                             "and choose sound methods."),
    "creative-writing": (0.10, "You are a creative writing assistant who helps with stories, poems and scripts, "
                               "from first ideas to polished drafts."),
    "advice-seeking": (0.05, "You are a thoughtful adviser on work, relationships and everyday decisions, giving "
                             "balanced, practical guidance."),
    "brainstorming": (0.05, "You are an assistant for brainstorming who offers many varied, original ideas and "
                            "helps the user build on the best of them."),
}
CATEGORIES = {name: (weight, f"{prompt} {_NARRATIVE}") for name, (weight, prompt) in _ROLES.items()}
"""category → (weight, system prompt)"""
_MARKER = "\x00next-user-turn\x00"


@functools.cache
def _renderer():
    """The bundled SmolLM2 tokenizer, used only to render jinja chat templates (its own, or the recipe's)."""
    from transformers import AutoTokenizer

    from smollab.paths import ASSETS

    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")


def query_prompt(history: Messages, chat_template: str | None = None) -> str:
    """The raw prompt a MagPie query continues: ``history`` rendered, then the opening of a user turn."""
    from jinja2 import TemplateError

    messages = [*history, {"role": "user", "content": _MARKER}]
    try:
        text = _renderer().apply_chat_template(messages, chat_template=chat_template or SMOLLM2_CHAT_TEMPLATE,
                                               tokenize=False)
    except TemplateError as err:
        raise SmollabError(f"synth.chat_template: the jinja template fails to render ({err}); fix it") from None
    if _MARKER not in text:
        raise SmollabError("synth.chat_template: the template does not write a user message's content; it must "
                           "render messages[i]['content'] for role user")
    return text[: text.index(_MARKER)]


def query_requests(systems: list[str], histories: list[Messages], sampling: Sampling, seeds: list[int],
                   chat_template: str | None) -> list[dict]:
    """Raw-completion requests for the next user turn of each conversation (under its system prompt)."""
    return [sampling.request(seed, prompt=query_prompt([{"role": "system", "content": system}, *history],
                                                      chat_template))
            for system, history, seed in zip(systems, histories, seeds)]


def generate(cfg: MagpieConfig, synth: SynthConfig, ask: Ask) -> list[Draft]:
    """``cfg.n`` conversations of ``cfg.turns`` exchanges; each stage asks for every live conversation at once."""
    names = list(cfg.categories)
    drawn = random.Random(f"{synth.seed}:magpie").choices(names, [cfg.categories[n].weight for n in names], k=cfg.n)
    drafts = [Draft("magpie", f"magpie-{i}", meta={"category": name}) for i, name in enumerate(drawn)]
    systems = [cfg.categories[name].system_prompt for name in drawn]
    for turn in range(1, cfg.turns + 1):
        ids = live(drafts)
        seeds = [request_seed(synth.seed, "magpie", i, "query", turn) for i in ids]
        requests = query_requests([systems[i] for i in ids], [drafts[i].messages for i in ids], cfg.query, seeds,
                                  synth.chat_template)
        for i, reply in zip(ids, ask(f"query {turn}", requests)):
            drafts[i].add("user", reply)
        ids = live(drafts)
        requests = [cfg.answer.request(request_seed(synth.seed, "magpie", i, "answer", turn),
                                       messages=[{"role": "system", "content": systems[i]}, *drafts[i].messages])
                    for i in ids]
        for i, reply in zip(ids, ask(f"answer {turn}", requests)):
            drafts[i].add("assistant", reply)
    return drafts


def planned_requests(cfg: MagpieConfig) -> int:
    """Requests at most (fewer when conversations drop out early)."""
    return 2 * cfg.n * cfg.turns
