"""Smol-Constraints: prompts carrying verifiable IFEval constraints, kept only when IFEval's checkers agree.

A prompt is a task (a seed task written for smollab, or one MagPie writes) followed by 1 to
``max_constraints`` constraints drawn with the seed from ``CATALOGUE``: an IFEval instruction id, kwargs
sampled in the form ``smollab.eval.ifeval`` reads, and the instruction in our own words. ``CONFLICTS``
says which ids never go together (one cannot write all-lowercase and all-capitals, JSON and bullet
points). The answer is kept only if ``follows(id, answer, kwargs, loose=False)`` holds for every
constraint: the strict check SmolLM2 filtered with. The trade-off: SmolTalk let the model write the
constrained instruction and had Qwen2.5-72B read ids and kwargs back out of it; sampling them here
makes every constraint checkable by construction, at the price of a fixed catalogue of wordings. Left
out: ``detectable_format:constrained_response`` (a yes/no/maybe answer, which makes sense only for
yes-or-no questions, and no seed task is one).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from smollab.eval.ifeval import follows
from smollab.post.synth.config import ConstraintsConfig, SynthConfig
from smollab.post.synth.magpie import query_requests
from smollab.post.synth.records import Ask, Draft, live, request_seed

WORDS = ("river", "garden", "window", "coffee", "lantern", "harvest", "signal", "journey", "market", "winter",
         "silver", "engine", "orchard", "compass", "thunder", "bakery", "harbor", "puzzle", "meadow", "ticket")
"""keywords to include, repeat or avoid; none occurs in an end phrase or first word below"""
END_PHRASES = ("Let me know if you would like any changes.", "That is all I have to say.",
               "Thanks for reading to the end.", "Feel free to ask a follow-up question.")
FIRST_WORDS = ("today", "imagine", "meanwhile", "finally", "honestly", "overall")
LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese"}
ORDINALS = ("first", "second", "third", "fourth", "fifth")
SEED_TASKS = (
    "Write a short blog post about the pleasures of cycling to work.",
    "Describe a quiet morning in a small mountain village.",
    "Write an email to a colleague asking to move a meeting to Thursday.",
    "Explain to a twelve-year-old why the sky looks blue.",
    "Write a product description for a reusable water bottle.",
    "Tell a short story about a lighthouse keeper who finds a message in a bottle.",
    "Give advice to someone starting their first job as a nurse.",
    "Write a review of an imaginary Italian restaurant.",
    "Explain how a bill becomes a law in a parliamentary system.",
    "Write a letter to a future self, to be opened in ten years.",
    "Describe the water cycle for a school science newsletter.",
    "Write a cover letter for a junior data analyst position.",
    "Summarize the main arguments for and against working from home.",
    "Write a motivational speech for a high school football team at half time.",
    "Describe how to plant and care for tomato seedlings.",
    "Write a complaint to a landlord about a broken heating system.",
    "Explain what compound interest is and why it matters for savings.",
    "Write a travel guide entry for a fictional island in the Atlantic.",
    "Write a thank-you note to a neighbour who watered your plants.",
    "Describe the life of a honeybee from egg to forager.",
    "Write a short biography of an invented nineteenth-century inventor.",
    "Explain the rules of chess to a complete beginner.",
    "Write an announcement for a community book swap in the local park.",
    "Argue for more public libraries in a letter to a city council.",
    "Write a bedtime story about a dragon who is afraid of the dark.",
    "Describe the best way to prepare for a job interview.",
    "Write a press release for a new electric bus line.",
    "Explain why sleep matters for memory, for a general audience.",
    "Write a dialogue between a barista and a customer who cannot decide what to order.",
    "Describe your ideal weekend in a big city.",
)


@dataclass(frozen=True)
class Kind:
    """One checkable constraint: its IFEval id, how its kwargs are drawn, and how it is asked for."""

    id: str
    draw: Callable[[random.Random, str], dict]
    """``(rng, task) -> kwargs``, exactly the names smollab.eval.ifeval's checker takes"""
    text: Callable[[dict], str]


def _relation(rng: random.Random) -> str:
    return rng.choice(("at least", "less than"))


def _count(kwargs: dict, number: str, relation: str, noun: str) -> str:
    bound = "at least" if kwargs[relation] == "at least" else "fewer than"
    return f"{bound} {kwargs[number]} {noun}"


def _quoted(words: list[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


CATALOGUE: dict[str, Kind] = {kind.id: kind for kind in (
    Kind("change_case:capital_word_frequency",
         lambda rng, task: {"capital_frequency": rng.randint(2, 8), "capital_relation": _relation(rng)},
         lambda k: "Write " + _count(k, "capital_frequency", "capital_relation", "words in all capital letters") +
                   " (a word counts when every letter of it is a capital)."),
    Kind("change_case:english_capital", lambda rng, task: {},
         lambda k: "Reply in English, and make every letter of the reply a capital letter."),
    Kind("change_case:english_lowercase", lambda rng, task: {},
         lambda k: "Reply in English, and keep every letter of the reply lowercase, capitals nowhere."),
    Kind("combination:repeat_prompt", lambda rng, task: {"prompt_to_repeat": task},
         lambda k: "Start by copying the request above exactly as it is written (not these instructions), and "
                   "only then answer it."),
    Kind("combination:two_responses", lambda rng, task: {},
         lambda k: "Offer two different versions of the reply, with a line of six asterisks (******) between them."),
    Kind("detectable_content:number_placeholders", lambda rng, task: {"num_placeholders": rng.randint(1, 4)},
         lambda k: f"Leave at least {k['num_placeholders']} blanks for the reader to fill in, each written in "
                   "square brackets like [city]."),
    Kind("detectable_content:postscript", lambda rng, task: {"postscript_marker": rng.choice(("P.S.", "P.P.S"))},
         lambda k: f"Close with a postscript, a final note that begins with {k['postscript_marker']}"),
    Kind("detectable_format:json_format", lambda rng, task: {},
         lambda k: "Return the whole reply as one valid JSON value; a ```json fence around it is allowed."),
    Kind("detectable_format:multiple_sections",
         lambda rng, task: {"section_spliter": rng.choice(("Section", "SECTION", "Part", "PART")),
                            "num_sections": rng.randint(2, 4)},
         lambda k: f"Split the reply into {k['num_sections']} numbered sections whose headings read "
                   f"{k['section_spliter']} 1, {k['section_spliter']} 2 and so on."),
    Kind("detectable_format:number_bullet_lists", lambda rng, task: {"num_bullets": rng.randint(2, 6)},
         lambda k: f"Include a markdown list of exactly {k['num_bullets']} items, each on its own line starting "
                   "with '* ', and no other list items."),
    Kind("detectable_format:number_highlighted_sections", lambda rng, task: {"num_highlights": rng.randint(1, 4)},
         lambda k: f"Mark at least {k['num_highlights']} passages with markdown emphasis, as in *a key idea*."),
    Kind("detectable_format:title", lambda rng, task: {},
         lambda k: "Give the reply a title set between double angle brackets, as in <<Notes from the Harbor>>."),
    Kind("keywords:existence", lambda rng, task: {"keywords": rng.sample(WORDS, rng.randint(1, 2))},
         lambda k: f"Work the word(s) {_quoted(k['keywords'])} into the reply."),
    Kind("keywords:forbidden_words", lambda rng, task: {"forbidden_words": rng.sample(WORDS, rng.randint(2, 3))},
         lambda k: f"Never use these words: {_quoted(k['forbidden_words'])}."),
    Kind("keywords:frequency",
         lambda rng, task: {"keyword": rng.choice(WORDS), "frequency": rng.randint(2, 4), "relation": _relation(rng)},
         lambda k: f"The word \"{k['keyword']}\" should appear " +
                   ("at least" if k["relation"] == "at least" else "fewer than") + f" {k['frequency']} times."),
    Kind("keywords:letter_frequency",
         lambda rng, task: {"letter": rng.choice("bcdfgkmpwy"), "let_frequency": rng.randint(3, 12),
                            "let_relation": _relation(rng)},
         lambda k: f"Use the letter '{k['letter']}' " + ("at least" if k["let_relation"] == "at least" else
                                                         "fewer than") + f" {k['let_frequency']} times in total."),
    Kind("language:response_language", lambda rng, task: {"language": rng.choice(list(LANGUAGES))},
         lambda k: f"Write the reply in {LANGUAGES[k['language']]} only; no other language may appear."),
    Kind("length_constraints:nth_paragraph_first_word", lambda rng, task: _nth_paragraph(rng),
         lambda k: f"Write exactly {k['num_paragraphs']} paragraphs, separated by blank lines, and let the "
                   f"{ORDINALS[k['nth_paragraph'] - 1]} paragraph open with the word \"{k['first_word']}\"."),
    Kind("length_constraints:number_paragraphs", lambda rng, task: {"num_paragraphs": rng.randint(2, 5)},
         lambda k: f"Write exactly {k['num_paragraphs']} paragraphs, with a line holding only *** between "
                   "consecutive paragraphs."),
    Kind("length_constraints:number_sentences",
         lambda rng, task: {"num_sentences": rng.randint(2, 10), "relation": _relation(rng)},
         lambda k: "Write " + _count(k, "num_sentences", "relation", "sentences") + "."),
    Kind("length_constraints:number_words",
         lambda rng, task: {"num_words": rng.choice((30, 50, 80, 100, 150, 200, 300)), "relation": _relation(rng)},
         lambda k: "Keep the reply to " + _count(k, "num_words", "relation", "words") + "."),
    Kind("punctuation:no_comma", lambda rng, task: {},
         lambda k: "Leave out commas entirely: not one comma may appear."),
    Kind("startend:end_checker", lambda rng, task: {"end_phrase": rng.choice(END_PHRASES)},
         lambda k: f"Make \"{k['end_phrase']}\" the very last sentence, with nothing after it."),
    Kind("startend:quotation", lambda rng, task: {},
         lambda k: "Enclose the entire reply in one pair of double quotation marks."),
)}


def _nth_paragraph(rng: random.Random) -> dict:
    paragraphs = rng.randint(2, 4)
    return {"num_paragraphs": paragraphs, "nth_paragraph": rng.randint(1, paragraphs),
            "first_word": rng.choice(FIRST_WORDS)}


_FORMATS = ("combination:two_responses", "combination:repeat_prompt", "detectable_content:postscript",
            "detectable_format:multiple_sections", "detectable_format:number_bullet_lists",
            "detectable_format:number_highlighted_sections", "detectable_format:title",
            "length_constraints:nth_paragraph_first_word", "length_constraints:number_paragraphs",
            "length_constraints:number_sentences", "punctuation:no_comma", "startend:end_checker",
            "startend:quotation", "change_case:english_capital")
_ENGLISH = ("change_case:english_capital", "change_case:english_lowercase", "combination:repeat_prompt",
            "keywords:existence", "keywords:frequency", "length_constraints:nth_paragraph_first_word",
            "startend:end_checker")
# Pairs no answer can satisfy together, or only by contortion (a checker reading the other's markup).
CONFLICTS: frozenset[frozenset[str]] = frozenset(frozenset(pair) for pair in [
    *[("detectable_format:json_format", other) for other in _FORMATS],  # JSON leaves no room for other markup
    *[("language:response_language", other) for other in _ENGLISH],     # English words in a non-English reply
    ("change_case:english_lowercase", "change_case:english_capital"),
    ("change_case:english_lowercase", "change_case:capital_word_frequency"),
    ("change_case:english_lowercase", "detectable_format:multiple_sections"),  # the headings are capitalised
    ("change_case:english_capital", "change_case:capital_word_frequency"),
    ("change_case:english_capital", "detectable_format:multiple_sections"),
    ("startend:quotation", "combination:two_responses"),
    ("startend:quotation", "combination:repeat_prompt"),
    ("combination:two_responses", "combination:repeat_prompt"),
    ("combination:two_responses", "length_constraints:number_paragraphs"),  # ****** splits as *** too
    ("combination:two_responses", "length_constraints:nth_paragraph_first_word"),
    ("combination:two_responses", "detectable_format:multiple_sections"),
    ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word"),  # *** vs blank lines
    ("length_constraints:number_paragraphs", "detectable_format:multiple_sections"),
    ("length_constraints:nth_paragraph_first_word", "detectable_format:multiple_sections"),
    ("length_constraints:nth_paragraph_first_word", "detectable_format:title"),
    ("length_constraints:nth_paragraph_first_word", "combination:repeat_prompt"),
    ("combination:repeat_prompt", "detectable_format:title"),
    ("combination:repeat_prompt", "punctuation:no_comma"),  # the task may hold a comma
    ("combination:repeat_prompt", "keywords:forbidden_words"),
    ("startend:end_checker", "detectable_content:postscript"),  # both claim the last line
    ("keywords:existence", "keywords:forbidden_words"),
    ("keywords:frequency", "keywords:forbidden_words"),
    ("length_constraints:number_words", "length_constraints:number_sentences"),
])


def conflicts(a: str, b: str) -> bool:
    return frozenset((a, b)) in CONFLICTS


@dataclass(frozen=True)
class Constraint:
    id: str
    kwargs: dict

    @property
    def text(self) -> str:
        return CATALOGUE[self.id].text(self.kwargs)

    def followed_by(self, answer: str) -> bool:
        return follows(self.id, answer, self.kwargs, loose=False)


def draw(rng: random.Random, task: str, max_constraints: int = 3) -> list[Constraint]:
    """1..max_constraints distinct, mutually compatible constraints for ``task``, in prompt order."""
    wanted = rng.randint(1, max_constraints)
    chosen: list[str] = []
    for kind in rng.sample(list(CATALOGUE), len(CATALOGUE)):
        if len(chosen) == wanted:
            break
        if not any(conflicts(kind, other) for other in chosen):
            chosen.append(kind)
    return [Constraint(kind, CATALOGUE[kind].draw(rng, task)) for kind in chosen]


def prompt(task: str, constraints: list[Constraint]) -> str:
    return f"{task}\n\n" + " ".join(c.text for c in constraints)


def generate(cfg: ConstraintsConfig, synth: SynthConfig, ask: Ask) -> list[Draft]:
    """``cfg.n`` constrained prompts and answers; an answer breaking any constraint is dropped."""
    drafts = [Draft("constraints", f"constraints-{i}", meta={"task_source": cfg.tasks}) for i in range(cfg.n)]
    rngs = [random.Random(f"{synth.seed}:constraints:{i}") for i in range(cfg.n)]
    if cfg.tasks == "seed":
        for draft, rng in zip(drafts, rngs):
            draft.messages.append({"role": "user", "content": rng.choice(SEED_TASKS)})
    else:
        seeds = [request_seed(synth.seed, "constraints", i, "task") for i in range(cfg.n)]
        requests = query_requests([cfg.task_system_prompt] * cfg.n, [[]] * cfg.n, cfg.query, seeds,
                                  synth.chat_template)
        for draft, reply in zip(drafts, ask("task", requests)):
            draft.add("user", reply)
    ids = live(drafts)
    for i in ids:
        task = drafts[i].messages[0]["content"]
        constraints = draw(rngs[i], task, cfg.max_constraints)
        drafts[i].messages[0]["content"] = prompt(task, constraints)
        drafts[i].meta |= {"task": task, "constraints": [{"id": c.id, "kwargs": c.kwargs} for c in constraints]}
    requests = [cfg.answer.request(request_seed(synth.seed, "constraints", i, "answer"),
                                   messages=list(drafts[i].messages)) for i in ids]
    for i, reply in zip(ids, ask("answer", requests)):
        draft = drafts[i]
        draft.add("assistant", reply)
        if draft.reason is None:
            answer = draft.messages[-1]["content"]
            failed = next((c for c in constraints_of(draft) if not c.followed_by(answer)), None)
            if failed:
                draft.drop(f"constraint_failed:{failed.id}", failed.text)
    return drafts


def constraints_of(draft: Draft) -> list[Constraint]:
    return [Constraint(c["id"], c["kwargs"]) for c in draft.meta["constraints"]]


def planned_requests(cfg: ConstraintsConfig) -> int:
    return cfg.n * (2 if cfg.tasks == "magpie" else 1)
