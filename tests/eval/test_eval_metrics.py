import math

import pytest

from smollab.eval.metrics import (choice_predictions, exact_match_any, extract_final_number, mean_stderr,
                                  normalize_answer, normalize_number, pass_at_k)
from smollab.eval.tasks import math as math_task
from smollab.eval.tasks import triviaqa


def test_mean_and_stderr_match_hand_computation():
    mean, stderr = mean_stderr([1, 0, 1, 1])
    # sample variance = (3 * 0.25**2 + 0.75**2) / 3 = 0.25; stderr = sqrt(0.25 / 4)
    assert mean == 0.75 and stderr == pytest.approx(0.25)
    assert mean_stderr([1.0]) == (1.0, 0.0)


def test_acc_norm_divides_by_length_without_the_leading_space():
    # raw: choice 0 wins (-6 > -8); per char without leading space: -6/3=-2 vs -8/8=-1, so choice 1 wins
    preds = choice_predictions([-6.0, -8.0], [" abc", " abcdefgh"])
    assert preds == {"acc": 0, "acc_norm": 1}
    # with the space counted (lm-eval's acc_norm) the lengths would be 4 and 9: still 1, but ties differ
    assert choice_predictions([-3.0, -4.0], [" ab", "abcd"])["acc_norm"] == 1  # -1.5 vs -1.0


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - math.comb(7, 2) / math.comb(10, 2))
    assert pass_at_k(3, 3, 2) == 1.0 and pass_at_k(4, 0, 1) == 0.0


@pytest.mark.parametrize("text, expected", [
    ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
    ("#### 1,000\n\nQuestion: next", "1000"),
    ("The total is $1,234.50.", "1234.5"),
    ("It drops by -3 degrees, then 4.00 more. So 4.00", "4"),
    ("First 12, then 7 apples; #### -5 apples, not 12", "-5"),
    ("no digits here", None),
])
def test_gsm8k_final_number_extraction(text, expected):
    assert extract_final_number(text) == expected


def test_number_normalisation():
    assert normalize_number("$1,000.00") == "1000" and normalize_number("0.50") == "0.5"
    assert normalize_number("abc") == "abc"


@pytest.mark.parametrize("text, expected", [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{\\dfrac12}", "\\frac{1}{2}"),
    ("first \\boxed{3} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\frac{\\pi}{2})"),
    ("\\boxed{10\\%}", "10"),
    ("\\boxed{90^\\circ}", "90"),
    ("\\boxed{x = 5}", "5"),
    ("\\boxed{5\\text{ cm}}", "5"),
    ("\\boxed 7$ is it", "7"),
    ("\\boxed{3/4}", "\\frac{3}{4}"),
    ("\\boxed{\\text{(C)}}", "(C)"),
    ("the answer is 4", None),
    ("unbalanced \\boxed{2", None),
])
def test_math_boxed_answer_extraction_and_normalisation(text, expected):
    assert math_task.extract(text) == expected


def test_math_gold_and_prediction_meet_after_normalisation():
    assert math_task.normalize("\\tfrac{1}{2}") == math_task.normalize("0.5")
    assert math_task.normalize("\\sqrt2") == "\\sqrt{2}"


@pytest.mark.parametrize("generation, golds, expected", [
    (" The Beatles.\nQuestion: next", ["Beatles"], 1.0),
    ("  an Onion ", ["Onion skins", "onion"], 1.0),
    (" Paris, France", ["Paris"], 0.0),
    ("\n", ["x"], 0.0),
])
def test_triviaqa_normalised_exact_match(generation, golds, expected):
    assert exact_match_any(triviaqa.extract(generation), golds) == expected


def test_answer_normalisation_drops_articles_punctuation_and_case():
    assert normalize_answer("The  U.S.A.!") == "usa"
