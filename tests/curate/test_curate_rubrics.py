import pytest

from smollab.curate.rubrics import RUBRICS


@pytest.mark.parametrize(
    "answer, score, reason",
    [
        ("The page explains photosynthesis clearly.\nEducational score: 4", 4, None),
        ("Justification...\n**Educational score: 3**", 3, None),
        ("educational SCORE = 2.", 2, None),
        ("Educational score: 5/5", 5, None),
        ("First I thought Educational score: 1, but then\nEducational score: 2", 2, None),
        ("", None, "no_final_line"),
        ("This page is great, I would give it four points.", None, "no_final_line"),
        ("Educational score: four", None, "not_a_whole_number"),
        ("Educational score: 3-4", None, "not_a_whole_number"),
        ("Educational score: 2.5", None, "not_a_whole_number"),
        ("Educational score: 7", None, "out_of_range"),
        ("Math score: 3", None, "no_final_line"),
    ],
)
def test_edu_final_line_parsing_never_guesses(answer, score, reason):
    assert RUBRICS["edu"].parse(answer) == (score, reason)


def test_math_recall_scale_is_three_points():
    assert RUBRICS["math_recall"].parse("Math score: 3") == (3, None)
    assert RUBRICS["math_recall"].parse("Math score: 4") == (None, "out_of_range")
    assert RUBRICS["math"].parse("Math score: 4") == (4, None)


def test_rubric_prompts_embed_the_document_and_name_the_language():
    code_prompt = RUBRICS["code"].prompt("def f(): pass", "Rust")
    assert "def f(): pass" in code_prompt and "Rust" in code_prompt and "ownership" in code_prompt
    for rubric in RUBRICS.values():
        prompt = rubric.prompt("SOME DOCUMENT TEXT")
        assert "SOME DOCUMENT TEXT" in prompt and rubric.final_prefix.strip() in prompt
