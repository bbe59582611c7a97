"""SmolLM2's chat template: it is the real SmolLM2-135M-Instruct's, and the SFT mask covers exactly what the model writes."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from smollab import pretrained
from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.post.template import (DEFAULT_SYSTEM_PROMPT, IM_END, SMOLLM2_CHAT_TEMPLATE, TurnBoundaryMerge,
                                   assistant_mask, render, with_chat_template)

SINGLE = [{"role": "user", "content": "What is the capital of France?"},
          {"role": "assistant", "content": "Paris."}]
MULTI = [{"role": "user", "content": "Give me a number between 1 and 10."},
         {"role": "assistant", "content": "7"},
         {"role": "user", "content": "Now double it, and say naïve café 😀."},
         {"role": "assistant", "content": "14 — naïve café 😀."}]
SYSTEM = [{"role": "system", "content": "You answer in one word."},
          {"role": "user", "content": "Colour of the sky?"},
          {"role": "assistant", "content": "Blue."}]
TOOLS = [{"role": "user", "content": "Weather in Paris?"},
         {"role": "tool_call", "content": '{"name": "weather", "arguments": {"city": "Paris"}}'},
         {"role": "tool", "content": '{"celsius": 21}'},
         {"role": "assistant", "content": "It is 21 °C in Paris."}]
CONVERSATIONS = {"single": SINGLE, "multi": MULTI, "system": SYSTEM, "tools": TOOLS}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")


@pytest.fixture(scope="module")
def real_tokenizer():
    """The tokenizer of the real SmolLM2-135M-Instruct. Slower on a fresh machine: the first use converts the
    bundled GGUF (~25 s), later ones read the converted copy cached under $SMOLLAB_CACHE."""
    return AutoTokenizer.from_pretrained(pretrained.resolve(pretrained.SMOLLM2_135M_INSTRUCT))


def test_template_is_the_one_the_real_smollm2_135m_instruct_tokenizer_ships(real_tokenizer):
    assert real_tokenizer.chat_template == SMOLLM2_CHAT_TEMPLATE


@pytest.mark.parametrize("add_generation_prompt", [False, True])
@pytest.mark.parametrize("name", ["single", "multi", "system"])
def test_render_and_ids_match_the_real_tokenizers_apply_chat_template(tokenizer, real_tokenizer, name, add_generation_prompt):
    messages = CONVERSATIONS[name]
    expected = real_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    assert render(messages, tokenizer, add_generation_prompt) == expected
    if not add_generation_prompt:
        ids = real_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        assert assistant_mask(messages, tokenizer).input_ids == ids


def test_default_system_prompt_appears_only_when_the_conversation_has_none(tokenizer):
    assert render(SINGLE, tokenizer).startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert DEFAULT_SYSTEM_PROMPT == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert DEFAULT_SYSTEM_PROMPT not in render(SYSTEM, tokenizer)
    assert render(SYSTEM, tokenizer).startswith("<|im_start|>system\nYou answer in one word.<|im_end|>\n")


@pytest.mark.parametrize("name", ["single", "multi", "system", "tools"])
def test_mask_covers_exactly_the_assistant_side_contents_and_their_im_end(tokenizer, name):
    messages = CONVERSATIONS[name]
    ids, mask = assistant_mask(messages, tokenizer)
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    runs, run = [], []
    for token, trained in zip(ids, mask):
        if trained:
            run.append(token)
        elif run:
            runs.append(run)
            run = []
    runs += [run] if run else []
    trained_turns = [m["content"] + IM_END for m in messages if m["role"] in ("assistant", "tool_call")]
    assert [tokenizer.decode(r) for r in runs] == trained_turns
    untrained = tokenizer.decode([token for token, trained in zip(ids, mask) if not trained])
    for message in messages:
        inside = message["content"] in untrained
        assert inside == (message["role"] in ("system", "user", "tool")), message
    assert untrained.count("<|im_start|>assistant\n") == sum(m["role"] == "assistant" for m in messages)


def test_a_turn_whose_whitespace_merges_with_the_header_is_refused_not_guessed(tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\n\nHello"}]
    with pytest.raises(TurnBoundaryMerge, match="merges text across a turn boundary into the token '\\\\n\\\\n'"):
        assistant_mask(messages, tokenizer)
    single_space = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " Hello"}]
    assert sum(assistant_mask(single_space, tokenizer).labels_mask) == 2  # " Hello", "<|im_end|>"


def test_with_chat_template_gives_a_tokenizer_without_one_smollm2s_template(tokenizer):
    bare = AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")
    bare.chat_template = None
    assert with_chat_template(bare) is bare
    assert bare.apply_chat_template(SINGLE, tokenize=False) == render(SINGLE, tokenizer)


def test_with_chat_template_refuses_a_tokenizer_without_chatml_tokens():
    words = Tokenizer(models.WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    plain = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]")
    with pytest.raises(SmollabError, match=r"<\|im_start\|> is not one token") as err:
        with_chat_template(plain)
    assert "\n" not in str(err.value)
