"""Metric functions: per-item scores and their aggregation with a standard error.

Every metric is computed per item and averaged, so the standard error is the sample standard
deviation over sqrt(n) (what lm-eval and lighteval report for means). Multiple-choice accuracy
follows lighteval's definitions; ``acc_norm`` is its "nospace" length normalisation (the summed
log-probability divided by the character length of the choice without its leading space), the
variant SmolLM2 reports. Answer normalisers for generative tasks live here too.
"""

import math
import re
import string
from collections.abc import Sequence


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)); stderr is 0 for fewer than two items."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])


def char_length_nospace(choice: str) -> int:
    return max(1, len(choice[1:] if choice.startswith(" ") else choice))


def choice_predictions(logliks: Sequence[float], choices: Sequence[str]) -> dict[str, int]:
    """Predicted choice index under the raw (``acc``) and length-normalised (``acc_norm``) scores."""
    normalised = [lp / char_length_nospace(c) for lp, c in zip(logliks, choices)]
    return {"acc": argmax(logliks), "acc_norm": argmax(normalised)}


def normalize_answer(text: str) -> str:
    """SQuAD/TriviaQA normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_any(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


_NUMBER = re.compile(r"-?[$]?\d[\d,]*(?:\.\d+)?")


def normalize_number(text: str) -> str:
    """'$1,000.00' -> '1000', '-3.50' -> '-3.5': strip currency, thousands separators, zero decimals."""
    text = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def extract_final_number(text: str) -> str | None:
    """The number after '####' if the generation has one (GSM8K's answer format), else its last number."""
    marked = text.split("####", 1)[1] if "####" in text else None
    candidates = _NUMBER.findall(marked if marked is not None else text)
    if not candidates:
        return None
    return normalize_number((candidates[0] if marked is not None else candidates[-1]).replace("$", ""))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al. 2021) for n samples of which c passed."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
