"""The LLM-judge rubrics (edu, math, math_recall, code) and the parser for their final line.

Each rubric is an additive scale written in our own words (the prompt text lives in ``<name>.txt``)
ending in one line ``<Label> score: N``. Parsing is deliberately strict: the last ``<Label> score:``
must be followed by exactly one whole number within the scale, else the answer is unparseable and
the reason is recorded; we never guess a score from free text, because a guessed label is noise
the classifier would then learn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).parent

# Example topics named in the code rubric's third criterion, per language (Stack-Edu varies it).
CODE_TOPICS = {
    "python": "data structures, recursion or working with files",
    "javascript": "asynchronous programming with promises",
    "typescript": "typing functions and interfaces",
    "java": "classes, interfaces and collections",
    "c": "pointers and memory management",
    "cpp": "templates and the standard library",
    "c++": "templates and the standard library",
    "c#": "LINQ and object-oriented design",
    "go": "goroutines and channels",
    "rust": "ownership and borrowing",
    "sql": "joins and aggregation",
    "shell": "pipes and text processing",
    "php": "handling web requests",
    "ruby": "blocks and iterators",
    "swift": "optionals and protocols",
    "markdown": "documenting a project",
}


@dataclass(frozen=True)
class Rubric:
    name: str
    label: str
    max_score: int

    @property
    def template(self) -> str:
        return (_HERE / f"{self.name}.txt").read_text()

    @property
    def final_prefix(self) -> str:
        """What the final line starts with; the local backend's logits mode pre-fills it."""
        return f"{self.label} score: "

    def prompt(self, text: str, language: str = "Python") -> str:
        topic = CODE_TOPICS.get(language.lower(), "functions, loops and data structures")
        return self.template.format(text=text, language=language, topic=topic)

    def parse(self, answer: str) -> tuple[int | None, str | None]:
        """``(score, None)`` or ``(None, why it is unparseable)``."""
        matches = list(re.finditer(rf"{self.label}\s+score\s*[:=]\s*\**\s*([^\n]*)", answer, re.IGNORECASE))
        if not matches:
            return None, "no_final_line"
        rest = matches[-1].group(1).strip()
        number = re.fullmatch(r"(\d+)(?:\s*/\s*\d+)?\s*\**\s*[.!]?\s*\**", rest)
        if number is None:
            return None, "not_a_whole_number"
        score = int(number.group(1))
        if score > self.max_score:
            return None, "out_of_range"
        return score, None


RUBRICS = {
    "edu": Rubric("edu", "Educational", 5),
    "math": Rubric("math", "Math", 5),
    "math_recall": Rubric("math_recall", "Math", 3),
    "code": Rubric("code", "Code", 5),
}
