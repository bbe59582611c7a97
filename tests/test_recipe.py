import copy

import pytest

from smollab.errors import SmollabError
from smollab.recipe import apply_overrides, load_recipe, validate_tree
from tests.conftest import REPO, smollab

BASE = {
    "name": "r",
    "data": {"sources": {"web": {"bundled": "web_c4_samples"}, "code": {"bundled": "code_thealgorithms_python"}}},
    "stages": [
        {"name": "a", "until_tokens": "1e6", "mixture": {"web": 0.6, "code": 0.4}},
        {"name": "b", "until_tokens": "+1e6", "mixture": {"web": 1.0}},
    ],
    "batch": {"seq_len": 128, "tokens_per_step": 4096, "micro_batch": 4},
}


def error_for(*overrides: str) -> str:
    with pytest.raises(SmollabError) as err:
        validate_tree(apply_overrides(copy.deepcopy(BASE), list(overrides)))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_token_counts_accept_yaml_friendly_and_relative_forms():
    recipe = validate_tree(copy.deepcopy(BASE))
    assert [s.until_tokens for s in recipe.stages] == [1_000_000, 2_000_000]
    assert validate_tree(apply_overrides(copy.deepcopy(BASE), ["stages.0.until_tokens=2M", "stages.1.until_tokens=3e6"])).total_tokens == 3_000_000


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["stages.0.mixture.web=0.5"], "stages.0.mixture: shares sum to 0.9, not 1"),
        (["stages.0.mixture.web=1.4", "stages.0.mixture.code=-0.4"], "stages.0.mixture.code: share -0.4 is negative"),
        (["stages.1.mixture.math=0.0"], "stages.1.mixture: unknown source 'math'"),
        (["stages.1.until_tokens=5e5"], "stages.1.until_tokens: 500,000 is not above the previous boundary 1,000,000"),
        (["batch.tokens_per_step=1000"], "batch.tokens_per_step: 1,000 is not divisible by seq_len × micro_batch"),
        (["optim.lrr=1"], "optim.lrr: unknown field"),
    ],
)
def test_invalid_recipes_fail_with_one_line_naming_field_and_fix(overrides, expected):
    assert expected in error_for(*overrides)


def test_seq_len_beyond_model_positions_and_rank_divisibility_are_one_line_errors():
    from smollab.presets import build_config
    from smollab.train.loop import check_geometry

    recipe = validate_tree(apply_overrides(copy.deepcopy(BASE), ["batch.seq_len=4096", "batch.tokens_per_step=16384"]))
    with pytest.raises(SmollabError, match=r"batch.seq_len: 4096 exceeds the model's 2048 positions"):
        check_geometry(recipe, build_config(recipe.model), 100, world=1)
    recipe = validate_tree(copy.deepcopy(BASE))
    with pytest.raises(SmollabError, match=r"not divisible by seq_len × micro_batch × ranks = 128 × 4 × 16"):
        check_geometry(recipe, build_config(recipe.model), 100, world=16)


def test_cli_overrides_go_through_the_same_validation():
    result = smollab("train", "recipes/demo.yaml", "--dry-run", "stages.0.mixture.web=0.9", check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "stages.0.mixture: shares sum to" in lines[0]


def test_shipped_recipes_validate_and_dry_run_without_data():
    for name in ("smollm2-135m", "smollm2-360m", "smollm2-1.7b", "demo"):
        load_recipe(REPO / "recipes" / f"{name}.yaml")
    result = smollab("train", "recipes/smollm2-1.7b.yaml", "--dry-run")
    for stage in ("stable-1", "stable-2", "stable-3", "decay", "1,711,376,384", "decay@4,720,688"):
        assert stage in result.stdout
