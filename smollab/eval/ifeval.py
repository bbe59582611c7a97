"""IFEval's instruction checkers: the verdicts of the reference (Google's instruction_following_eval, as
shipped in lm-eval 0.4.13) for its 25 instruction ids, without lm-eval at run time.

Each checker is a function ``(response, **kwargs) -> bool`` written from the reference's rules, quirks
included (keywords are regular expressions, the nth paragraph is counted among the non-empty ones but
indexed among all, loose variants are stripped), so that scores compare with published ones;
``tests/eval/test_eval_ifeval_reference.py`` checks this verdict by verdict. Two departures, both
there to keep a verdict reproducible and offline:
- where the reference replaces a kwarg by a random draw (a falsy or negative value, a letter outside
  a-z, an nth_paragraph outside 1..num_paragraphs) it is taken as written: 0 is 0, "" is "", "#"
  counts "#"; an absent kwarg is an error. langdetect is seeded; the reference leaves it unseeded.
- sentences (number_sentences, and the split before capital_word_frequency's Treebank tokenizer) come
  from the reference's own regex splitter, not from NLTK's punkt model, which is a data download;
  counts can differ from punkt's where it knows an abbreviation the regex does not.
"""

import functools
import inspect
import json
import re
from collections.abc import Callable

from smollab.errors import SmollabError

_PRD, _STOP = "\x00", "\x01"  # a period that ends no sentence; a sentence end
_LETTER = "([A-Za-z])"
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s"
             r"|This\s|Wherever)")
# Applied in order: protect the periods of titles, web addresses, decimals, initials and acronyms; mark
# the sentence ends the final split on punctuation would miss; move closing quotes before the mark.
_SENTENCE_RULES: list[tuple[re.Pattern, str | Callable[[re.Match], str]]] = [(re.compile(p), r) for p, r in [
    (r"(Mr|St|Mrs|Ms|Dr)\.", rf"\1{_PRD}"),
    (r"\.(com|net|org|io|gov|edu|me)", rf"{_PRD}\1"),
    (r"([0-9])\.([0-9])", rf"\1{_PRD}\2"),
    (r"\.{2,}", lambda m: _PRD * len(m.group()) + _STOP),
    (r"Ph\.D\.", f"Ph{_PRD}D{_PRD}"),
    (rf"\s{_LETTER}\. ", rf" \1{_PRD} "),
    (rf"([A-Z]\.[A-Z]\.(?:[A-Z]\.)?) {_STARTERS}", rf"\1{_STOP} \2"),
    (rf"{_LETTER}\.{_LETTER}\.{_LETTER}\.", rf"\1{_PRD}\2{_PRD}\3{_PRD}"),
    (rf"{_LETTER}\.{_LETTER}\.", rf"\1{_PRD}\2{_PRD}"),
    (rf" {_SUFFIXES}\. {_STARTERS}", rf" \1{_STOP} \2"),
    (rf" {_SUFFIXES}\.", rf" \1{_PRD}"),
    (rf" {_LETTER}\.", rf" \1{_PRD}"),
    (r"\.”", "”."), (r'\."', '".'), (r'!"', '"!'), (r'\?"', '"?'),
    (r"([.?!])", rf"\1{_STOP}"),
]]


def _compare(count: int, relation: str, target: int) -> bool:
    if relation == "less than":
        return count < target
    if relation == "at least":
        return count >= target
    raise SmollabError(f"IFEval relation '{relation}' is unknown; use 'less than' or 'at least'.")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _sentences(text: str) -> list[str]:
    """The reference's regex sentence split; a trailing empty piece is not a sentence."""
    text = f" {text}  ".replace("\n", " ")
    for pattern, replacement in _SENTENCE_RULES:
        text = pattern.sub(replacement, text)
    sentences = [s.strip() for s in text.replace(_PRD, ".").split(_STOP)]
    return sentences[:-1] if sentences and not sentences[-1] else sentences


@functools.cache
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer  # NLTK's word_tokenize without its punkt data

    return NLTKWordTokenizer()


def _treebank_words(text: str) -> list[str]:
    return [w for s in _sentences(text) for w in _word_tokenizer().tokenize(s)]


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
    return _compare(sum(w.isupper() for w in _treebank_words(r)), capital_relation, capital_frequency)


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


_POSTSCRIPT_PATTERNS = {"P.S.": r"\s*p\.\s?s\..*$", "P.P.S": r"\s*p\.\s?p\.\s?s.*$"}


def postscript(r, postscript_marker):
    marker = postscript_marker.strip()
    pattern = _POSTSCRIPT_PATTERNS.get(marker, r"\s*" + marker.lower() + r".*$")
    return re.search(pattern, r.lower(), flags=re.MULTILINE) is not None


def constrained_response(r):
    return any(o in r.strip() for o in ("My answer is yes.", "My answer is no.", "My answer is maybe."))


def json_format(r):
    text = r.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):  # removed one after the other, like the reference
        text = text.removeprefix(fence)
    try:
        json.loads(text.removesuffix("```").strip())
    except ValueError:
        return False
    return True


def multiple_sections(r, section_spliter, num_sections):
    sections = re.split(r"\s?" + section_spliter.strip() + r"\s?\d+\s?", r)
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
    return all(re.search(k, r, flags=re.IGNORECASE) for k in keywords)


def forbidden_words(r, forbidden_words):
    return not any(re.search(r"\b" + w + r"\b", r, flags=re.IGNORECASE) for w in forbidden_words)


def frequency(r, keyword, frequency, relation):
    return _compare(len(re.findall(keyword.strip(), r, flags=re.IGNORECASE)), relation, frequency)


def letter_frequency(r, letter, let_frequency, let_relation):
    return _compare(r.lower().count(letter.lower()), let_relation, let_frequency)


def response_language(r, language):
    detected = detect_language(r)
    return detected is None or detected == language


def nth_paragraph_first_word(r, num_paragraphs, nth_paragraph, first_word):
    """The nth paragraph is looked up among all pieces between blank lines, empty ones included (as the
    reference does), while the count that must equal num_paragraphs skips the empty ones. Its first word
    runs up to the first . , ? ! ' or " after leading quotes: "Weekend's" is "weekend"."""
    paragraphs = r.split("\n\n")
    count = sum(bool(p.strip()) for p in paragraphs)
    if not 1 <= nth_paragraph <= count:
        return False
    paragraph = paragraphs[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].lstrip("'").lstrip('"')
    return count == num_paragraphs and re.match(r"[^.,?!'\"]*", word).group().lower() == first_word.lower()


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
    """The reference's 8 loose readings: as written, without the first and/or last line (then stripped),
    and each of those without asterisks."""
    lines = response.split("\n")
    cuts = [response] + ["\n".join(cut).strip() for cut in (lines[1:], lines[:-1], lines[1:-1])]
    return cuts + [c.replace("*", "") for c in cuts]


def _arguments(instruction_id: str, check: Callable[..., bool], kwargs: dict) -> dict:
    """The kwargs a checker takes; None means absent (the HF rows carry every kwarg name, mostly None)."""
    args = {k: v for k, v in kwargs.items() if v is not None}
    names = list(inspect.signature(check).parameters)[1:]
    if args.keys() != set(names):
        raise SmollabError(f"IFEval instruction '{instruction_id}': kwargs {sorted(args)} given, it takes "
                           f"{names}; fix the row's kwargs.")
    return args


def follows(instruction_id: str, response: str, kwargs: dict, *, loose: bool) -> bool:
    """Whether the response follows one instruction (strictly, or under any loose variant)."""
    check = CHECKERS.get(instruction_id)
    if check is None:
        raise SmollabError(f"IFEval instruction '{instruction_id}' has no checker; known: {', '.join(CHECKERS)}.")
    args = _arguments(instruction_id, check, kwargs)
    candidates = loose_variants(response) if loose else [response]
    try:
        return any(c.strip() and check(c, **args) for c in candidates)
    except re.error as e:
        raise SmollabError(f"IFEval instruction '{instruction_id}': kwargs {args} are not a valid regular "
                           f"expression ({e}); they are matched as regular expressions, so escape them.") from None
