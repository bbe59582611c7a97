import pytest

from smollab.errors import SmollabError
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


NTH = "length_constraints:nth_paragraph_first_word"


def test_the_first_word_stops_at_an_apostrophe_and_empty_paragraphs_keep_their_place():
    weekend = {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "weekend"}
    assert follows(NTH, "Weekend's plans.\n\nSecond.", weekend, loose=False)
    assert follows(NTH, '"Weekend," he said.\n\nSecond.', weekend, loose=False)
    # two paragraphs are counted, but the 2nd is looked up among all pieces, the leading empty one included
    second = {"num_paragraphs": 2, "nth_paragraph": 2}
    assert follows(NTH, "\n\nFirst.\n\nSecond.", second | {"first_word": "first"}, loose=False)
    assert not follows(NTH, "\n\nFirst.\n\nSecond.", second | {"first_word": "second"}, loose=False)


def test_loose_variants_are_stripped_so_a_dropped_preamble_leaves_no_empty_first_paragraph():
    response = "Sure!\n\n\nWeekend's plans.\n\nSecond."
    kwargs = {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "weekend"}
    assert not follows(NTH, response, kwargs, loose=False)
    assert follows(NTH, response, kwargs, loose=True)


def test_capital_words_are_the_tokens_of_nltk_word_tokenize():
    capitals = "change_case:capital_word_frequency"
    assert follows(capitals, "HELLO-WORLD is one word.", {"capital_frequency": 2, "capital_relation": "less than"},
                   loose=False)
    assert follows(capitals, "I CANNOT wait.", {"capital_frequency": 3, "capital_relation": "at least"}, loose=False)


def test_sentences_end_at_punctuation_not_at_titles_or_line_breaks():
    two = {"num_sentences": 3, "relation": "less than"}
    assert follows("length_constraints:number_sentences", "Dr. Smith arrived. He sat down.", two, loose=False)
    one = {"num_sentences": 2, "relation": "less than"}
    assert follows("length_constraints:number_sentences", "A list line\nanother line", one, loose=False)


def test_keywords_are_regular_expressions_and_an_invalid_one_is_a_one_line_error():
    assert follows("keywords:existence", "What a nice color.", {"keywords": ["colou?r"]}, loose=False)
    with pytest.raises(SmollabError, match="regular expression"):
        follows("keywords:existence", "f(x = 1", {"keywords": ["f(x"]}, loose=False)


def test_an_absent_kwarg_is_a_one_line_error_and_none_means_absent():
    words = "length_constraints:number_words"
    with pytest.raises(SmollabError, match="takes"):
        follows(words, "one two", {"num_words": 3}, loose=False)
    with pytest.raises(SmollabError, match="takes"):
        follows(words, "one two", {"num_words": 3, "relation": None}, loose=False)
    assert follows(words, "one two", {"num_words": 3, "relation": "less than", "language": None}, loose=False)
