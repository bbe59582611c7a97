"""MATH (test, 5,000 competition problems), 4-shot, boxed-answer extraction and normalisation.

Prompt per problem, as in SmolLM2's lighteval task: "{problem}\nPlease reason step by step, and
put your final answer within \\boxed{}." The four examples are fixed (the first four MATH-train
algebra problems whose solutions have no blank line, vendored as ``math_fewshot.jsonl.gz``)
because generation stops at a blank line, as SmolLM2's does. The answer is the last ``\\boxed{}``
of the generation, compared after the usual MATH normalisation (units, spaces, ``\\left``,
``dfrac``, bare fractions ...); the trade-off is string equality, not symbolic equivalence.
"""

import re
from functools import cache

from smollab.eval.tasks.base import EVAL_ASSETS, GenerativeTask, exact_match_scorer, read_rows

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@cache
def fewshot() -> str:
    rows = read_rows(EVAL_ASSETS / "math_fewshot.jsonl.gz", ("problem", "solution"))
    return "".join(f"{r['problem']}\n{INSTRUCTION}\n{r['solution']}\n\n" for r in rows)


def prompt(row: dict) -> str:
    return f"{fewshot()}{row['problem']}\n{INSTRUCTION}\n"


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces) or ``\\boxed x``."""
    marks = list(re.finditer(r"\\(?:boxed|fbox)", text))
    if not marks:
        return None
    rest = text[marks[-1].end():]
    if rest.startswith(" "):
        return rest[1:].split("$")[0].strip()
    if not rest.startswith("{"):
        return None
    depth = 0
    for i, ch in enumerate(rest):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            return rest[1:i]
    return None


def _fix_fracs(text: str) -> str:
    """'\\frac12' -> '\\frac{1}{2}', '\\frac1{72}' -> '\\frac{1}{72}'."""
    parts = text.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        a, b, tail = part[0], part[1], part[2:]
        out += "{" + a + "}" + (b + tail if b == "{" else "{" + b + "}" + tail)
    return out


def normalize(answer: str) -> str:
    """MATH answer normalisation (after Hendrycks et al.): one canonical string per common form."""
    s = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\text\{\s*[a-zA-Z ]+\}$", "", s.strip()) if re.search(r"\d", s) else s
    s = re.sub(r"\\(?:text|mbox|mathrm)\{(.*?)\}", r"\1", s)
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    if re.fullmatch(r"[a-z]\s*=\s*.+", s.strip()) and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=", 1)[1]
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    if m := re.fullmatch(r"(-?\d+)/(\d+)", s):
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    return s.rstrip(".")


def extract(generation: str) -> str | None:
    boxed = last_boxed(generation)
    return normalize(boxed) if boxed is not None else None


score = exact_match_scorer(extract, lambda row: normalize(row["answer"]))


TASK = GenerativeTask(
    name="math", file="math_test.jsonl.gz", rows=5000, hub="hendrycks/competition_math (test)", shots=4,
    fields=("id", "problem", "answer"), prompt=prompt, score=score, gold_text=lambda row: row["answer"],
    text=lambda row: (row["problem"], row["answer"]), until=("\n\n",), max_new_tokens=1024)
