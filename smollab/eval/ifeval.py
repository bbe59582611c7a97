"""IFEval's instruction checkers, for the 25 instruction ids present in the vendored prompts.

Each checker is a function ``(response, **kwargs) -> bool`` following the definitions of Zhou et
al. (2023). "Strict" checks the response as written; "loose" also accepts it after removing the
first and/or last line and markdown asterisks (8 variants), as in the paper. Sentences are split
with a regular expression and words are ``\\w+`` runs, so no NLTK data download is needed; the
trade-off is that sentence counts can differ from the punkt tokenizer's on abbreviations.
Language identification uses ``langdetect`` (seeded, so results are reproducible).
"""

import json
import re
from collections.abc import Callable

from smollab.errors import SmollabError


def _compare(count: int, relation: str, target: int) -> bool:
    if relation == "less than":
        return count < target
    if relation == "at least":
        return count >= target
    raise SmollabError(f"IFEval relation '{relation}' is unknown; use 'less than' or 'at least'.")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+", text)
    return [p for p in parts if p.strip()]


def detect_language(text: str) -> str | None:
    try:
        import langdetect
    except ImportError:
        raise SmollabError("IFEval's language checks need langdetect; `pip install langdetect==1.0.9`.") from None
    langdetect.DetectorFactory.seed = 0
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return None


def capital_word_frequency(r, capital_frequency, capital_relation):
    return _compare(sum(w.isupper() for w in _words(r)), capital_relation, capital_frequency)


def english_capital(r):
    return r.isupper() and detect_language(r) in ("en", None)


def english_lowercase(r):
    return r.islower() and detect_language(r) in ("en", None)


def repeat_prompt(r, prompt_to_repeat):
    return r.strip().lower().startswith(prompt_to_repeat.strip().lower())


def two_responses(r):
    parts = r.split("******")
    inner_empty = any(not p.strip() for p in parts[1:-1])
    valid = [p.strip() for p in parts if p.strip()]
    return not inner_empty and len(valid) == 2 and valid[0] != valid[1]


def number_placeholders(r, num_placeholders):
    return len(re.findall(r"\[.*?\]", r)) >= num_placeholders


def postscript(r, postscript_marker):
    marker = postscript_marker.strip().lower()
    if marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    elif marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return re.search(pattern, r.lower(), flags=re.MULTILINE) is not None


def constrained_response(r):
    return any(o in r.strip() for o in ("My answer is yes.", "My answer is no.", "My answer is maybe."))


def json_format(r):
    text = r.strip()
    text = re.sub(r"^```(?:json|JSON|Json)?\s*", "", text)
    text = re.sub(r"\s*```$", "", text)
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def multiple_sections(r, section_spliter, num_sections):
    sections = re.split(r"\s?" + re.escape(section_spliter) + r"\s?\d+\s?", r)
    return len(sections) - 1 >= num_sections


def number_bullet_lists(r, num_bullets):
    stars = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def number_highlighted_sections(r, num_highlights):
    single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h.removeprefix("**").removesuffix("**").strip()]
    return len(single) + len(double) >= num_highlights


def title(r):
    return any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", r))


def existence(r, keywords):
    return all(re.search(re.escape(k), r, flags=re.IGNORECASE) for k in keywords)


def forbidden_words(r, forbidden_words):
    return not any(re.search(r"\b" + re.escape(w) + r"\b", r, flags=re.IGNORECASE) for w in forbidden_words)


def frequency(r, keyword, frequency, relation):
    return _compare(len(re.findall(re.escape(keyword), r, flags=re.IGNORECASE)), relation, frequency)


def letter_frequency(r, letter, let_frequency, let_relation):
    return _compare(r.lower().count(letter.lower()), let_relation, let_frequency)


def response_language(r, language):
    detected = detect_language(r)
    return detected is None or detected == language


def nth_paragraph_first_word(r, num_paragraphs, nth_paragraph, first_word):
    paragraphs = [p for p in re.split(r"\n\n", r) if p.strip()]
    if len(paragraphs) != num_paragraphs or nth_paragraph > len(paragraphs):
        return False
    tokens = paragraphs[nth_paragraph - 1].split()
    word = re.sub(r"^\W+|\W+$", "", tokens[0]).lower() if tokens else ""
    return word == first_word.lower()


def number_paragraphs(r, num_paragraphs):
    paragraphs = re.split(r"\s?\*\*\*\s?", r)
    if any(not p.strip() for p in paragraphs[1:-1]):
        return False
    return sum(bool(p.strip()) for p in paragraphs) == num_paragraphs


def number_sentences(r, num_sentences, relation):
    return _compare(len(_sentences(r)), relation, num_sentences)


def number_words(r, num_words, relation):
    return _compare(len(_words(r)), relation, num_words)


def no_comma(r):
    return "," not in r


def end_checker(r, end_phrase):
    return r.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(r):
    text = r.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


CHECKERS: dict[str, Callable[..., bool]] = {
    "change_case:capital_word_frequency": capital_word_frequency,
    "change_case:english_capital": english_capital,
    "change_case:english_lowercase": english_lowercase,
    "combination:repeat_prompt": repeat_prompt,
    "combination:two_responses": two_responses,
    "detectable_content:number_placeholders": number_placeholders,
    "detectable_content:postscript": postscript,
    "detectable_format:constrained_response": constrained_response,
    "detectable_format:json_format": json_format,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:number_bullet_lists": number_bullet_lists,
    "detectable_format:number_highlighted_sections": number_highlighted_sections,
    "detectable_format:title": title,
    "keywords:existence": existence,
    "keywords:forbidden_words": forbidden_words,
    "keywords:frequency": frequency,
    "keywords:letter_frequency": letter_frequency,
    "language:response_language": response_language,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "length_constraints:number_paragraphs": number_paragraphs,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_words": number_words,
    "punctuation:no_comma": no_comma,
    "startend:end_checker": end_checker,
    "startend:quotation": quotation,
}


def loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    cuts = ["\n".join(lines), "\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    return cuts + [c.replace("*", "") for c in cuts]


def follows(instruction_id: str, response: str, kwargs: dict, *, loose: bool) -> bool:
    """Whether the response follows one instruction (strictly, or under any loose variant)."""
    check = CHECKERS.get(instruction_id)
    if check is None:
        raise SmollabError(f"IFEval instruction '{instruction_id}' has no checker; known: {', '.join(CHECKERS)}.")
    args = {k: v for k, v in kwargs.items() if v is not None}
    candidates = loose_variants(response) if loose else [response]
    return any(c.strip() and check(c, **args) for c in candidates)
