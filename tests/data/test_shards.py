import json
import shutil

import numpy as np
import pytest

from tests.conftest import SOURCES
from smollab.data.shards import load_streams
from smollab.data.tokenize import tokenize_recipe
from smollab.errors import SmollabError
from smollab.recipe import validate_tree


@pytest.fixture
def web_copy(tmp_path, shards):
    """A private copy of the session's real ``web`` shards (one task, one .ds), safe to damage."""
    shards_dir, _ = shards
    shutil.copytree(shards_dir / "web", tmp_path / "shards" / "web")
    return tmp_path / "shards", next((tmp_path / "shards" / "web").glob("*.ds"))


def web_recipe(shards_dir, tokenizer_dir, source=SOURCES["web"]):
    return validate_tree({
        "name": "t",
        "tokenizer": {"source": str(tokenizer_dir)},
        "data": {"sources": {"web": source}, "shards_dir": str(shards_dir)},
        "stages": [{"name": "s", "until_tokens": 1024, "mixture": {"web": 1.0}}],
        "batch": {"seq_len": 64, "tokens_per_step": 256, "micro_batch": 4},
    })


def assert_one_line_naming(err, ds_file):
    message = str(err.value)
    assert "\n" not in message and str(ds_file) in message and "damaged token shard" in message
    assert "re-run `smollab tokenize RECIPE" in message


@pytest.mark.parametrize("cut", [64, 63, "all"], ids=["truncated-even", "truncated-odd", "emptied"])
def test_damaged_shard_is_one_line_at_load_and_retokenizing_repairs_it(web_copy, shards, cut):
    shards_dir, ds_file = web_copy
    original = ds_file.read_bytes()
    with open(ds_file, "r+b") as f:
        f.truncate(0 if cut == "all" else len(original) - cut)
    with pytest.raises(SmollabError) as err:
        load_streams(shards_dir, ["web"])
    assert_one_line_naming(err, ds_file)
    assert "every record was bad" not in str(err.value)

    tokenize_recipe(web_recipe(shards_dir, shards[1]))
    assert ds_file.read_bytes() == original
    assert load_streams(shards_dir, ["web"])["web"].num_tokens == len(original) // 2


def test_out_of_vocabulary_ids_stop_the_slice_that_reads_them(web_copy):
    shards_dir, ds_file = web_copy
    with open(ds_file, "r+b") as f:
        f.seek(2 * 1000)
        f.write(b"\xff" * 20)  # tokens 1000..1009 become id 65,535; sizes stay consistent
    stream = load_streams(shards_dir, ["web"])["web"]
    assert len(stream.slice(0, 1000)) == 1000
    with pytest.raises(SmollabError, match="token 1,000 has id 65,535, outside the tokenizer's 1,024 ids") as err:
        stream.slice(990, 1054)
    assert_one_line_naming(err, ds_file)


def test_a_removed_shard_disagrees_with_the_summary_and_retokenizing_restores_it(tmp_path, shards):
    docs = [{"text": f"document {i}: " + "the quick brown fox jumps over the lazy dog " * (i + 1)} for i in range(6)]
    (tmp_path / "in").mkdir()
    for part in range(2):
        (tmp_path / "in" / f"part{part}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[part::2]))
    recipe = web_recipe(tmp_path / "shards", shards[1], {"files": [str(tmp_path / "in" / "*.jsonl")]})
    tokenize_recipe(recipe)
    before = load_streams(recipe.shards_dir, ["web"])["web"]
    whole = before.slice(0, before.num_tokens)
    for path in (recipe.shards_dir / "web").glob("00001_unshuffled.ds*"):
        path.unlink()
    with pytest.raises(SmollabError, match="the shards hold .* tokens but its summary.json records .*re-run `smollab tokenize"):
        load_streams(recipe.shards_dir, ["web"])

    tokenize_recipe(recipe)
    stream = load_streams(recipe.shards_dir, ["web"])["web"]
    assert np.array_equal(stream.slice(0, stream.num_tokens), whole)
