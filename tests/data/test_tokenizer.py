import json

import pytest
import typer
from transformers import AutoTokenizer
from typer.testing import CliRunner

from smollab.errors import SmollabError
from smollab.recipe import validate_tree
from smollab.tokenizer import load_tokenizer, show, tokenizer_for_recipe, train


def cli(*commands):
    app = typer.Typer()
    for command in commands:
        app.command()(command)
    return app


def test_bundled_smollm2_tokenizer_matches_expected_ids():
    tok = load_tokenizer("smollm2")
    assert len(tok) == 49152
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    # SmolLM2 splits digits one by one and adds no BOS.
    assert tok("Hello world 123").input_ids == [19556, 905, 216, 33, 34, 35]


def test_trained_bpe_has_smollm2_special_tokens_and_round_trips(tmp_path):
    result = CliRunner().invoke(
        cli(train, show),
        ["train", "--corpus", "web_c4_samples", "--corpus", "code_thealgorithms_python",
         "--max-docs", "150", "--vocab-size", "1024", "--out", str(tmp_path / "tok")],
    )
    assert result.exit_code == 0, result.output
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert len(tok) == 1024
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    for text in ["naïve café 日本語 🙂\n\tdef f(x):\n    return x ** 2", "  two  spaces, 2024-11-23 ", "<|im_end|>"]:
        assert tok.decode(tok(text).input_ids) == text
    assert tok("12345").input_ids == tok.convert_tokens_to_ids(list("12345"))
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    record = json.loads((tmp_path / "tok" / "training.json").read_text())
    assert record["documents"] == 300 and record["vocab_size"] == 1024

    shown = CliRunner().invoke(cli(train, show), ["show", str(tmp_path / "tok"), "--text", "x = 42"])
    assert shown.exit_code == 0, shown.output
    assert "1,024" in shown.output and "<|im_start|>" in shown.output and "bos" in shown.output


def test_recipe_tokenizer_is_trained_once_and_changed_settings_are_refused(tmp_path):
    tree = {
        "name": "tok",
        "out": str(tmp_path / "run"),
        "tokenizer": {"train": {"vocab_size": 600, "max_docs_per_source": 40}},
        "data": {"sources": {"web": {"bundled": "web_c4_samples"}}},
        "stages": [{"name": "s", "until_tokens": 1024, "mixture": {"web": 1.0}}],
        "batch": {"seq_len": 64, "tokens_per_step": 256, "micro_batch": 4},
    }
    first = tokenizer_for_recipe(validate_tree(tree))
    trained = tmp_path / "run" / "tokenizer" / "tokenizer.json"
    stamp = trained.stat().st_mtime_ns
    again = tokenizer_for_recipe(validate_tree(tree))
    assert trained.stat().st_mtime_ns == stamp
    assert again.file == first.file == str(trained) and len(again.tokenizer) == 600
    tree["tokenizer"]["train"]["vocab_size"] = 700
    with pytest.raises(SmollabError, match="vocab_size changed"):
        tokenizer_for_recipe(validate_tree(tree))


def test_unknown_tokenizer_source_is_a_clear_error():
    with pytest.raises(SmollabError, match="give 'smollm2', an HF tokenizer directory, or a hub id"):
        load_tokenizer("not-a-tokenizer")
