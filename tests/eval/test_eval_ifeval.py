from smollab.eval.ifeval import CHECKERS, follows
from smollab.eval.tasks import TASKS
from smollab.eval.tasks.ifeval import score


def test_every_instruction_in_the_vendored_prompts_has_a_checker():
    ids = {i for row in TASKS["ifeval"].docs() for i in row["instruction_id_list"]}
    assert ids <= CHECKERS.keys() and len(ids) == 25


def test_checkers_on_hand_written_responses():
    assert follows("punctuation:no_comma", "no commas here", {}, loose=False)
    assert not follows("punctuation:no_comma", "a, b", {}, loose=False)
    assert follows("length_constraints:number_words", "one two three", {"num_words": 3, "relation": "at least"},
                   loose=False)
    assert not follows("length_constraints:number_words", "one two", {"num_words": 3, "relation": "at least"},
                       loose=False)
    assert follows("detectable_format:title", "<<My Title>>\nbody", {}, loose=False)
    assert follows("detectable_format:number_bullet_lists", "* a\n* b\n- c", {"num_bullets": 3}, loose=False)
    assert follows("detectable_format:number_highlighted_sections", "*one* and **two**", {"num_highlights": 2},
                   loose=False)
    assert follows("detectable_format:json_format", '```json\n{"a": 1}\n```', {}, loose=False)
    assert follows("combination:two_responses", "first******second", {}, loose=False)
    assert not follows("combination:two_responses", "same******same", {}, loose=False)
    assert follows("detectable_content:postscript", "Hi.\nP.S. bye", {"postscript_marker": "P.S."}, loose=False)
    assert follows("startend:quotation", '"quoted"', {}, loose=False)
    assert follows("length_constraints:number_paragraphs", "a\n***\nb", {"num_paragraphs": 2}, loose=False)
    assert follows("length_constraints:nth_paragraph_first_word", "Weekend plans.\n\nSecond.",
                   {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "weekend"}, loose=False)
    assert follows("keywords:letter_frequency", "aaa", {"letter": "a", "let_frequency": 3, "let_relation": "at least"},
                   loose=False)
    assert follows("change_case:english_lowercase", "all of this text is lower case english", {}, loose=False)
    assert follows("language:response_language", "Dies ist ein deutscher Satz über das Wetter und den Garten.",
                   {"language": "de"}, loose=False)


def test_loose_accepts_what_strict_rejects_after_dropping_a_first_line_or_asterisks():
    response = "Sure, here it is:\nno commas in this line"
    assert not follows("punctuation:no_comma", response, {}, loose=False)
    assert follows("punctuation:no_comma", response, {}, loose=True)


def test_prompt_and_instruction_level_scores():
    row = {"instruction_id_list": ["punctuation:no_comma", "startend:quotation"], "kwargs": [{}, {}]}
    [scored] = score([row], ['"no commas"'])
    assert scored.metrics["prompt_level_strict_acc"] == 1.0 and scored.metrics["inst_level_strict_acc"] == [1.0, 1.0]
    [scored] = score([row], ["no commas"])
    assert scored.metrics["prompt_level_strict_acc"] == 0.0 and scored.metrics["inst_level_strict_acc"] == [1.0, 0.0]
