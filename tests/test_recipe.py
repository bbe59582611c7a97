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
        (["stages.0.mixture.web=nan"], "stages.0.mixture.web: share nan is not a finite number"),
        (["stages.0.mixture.web=.inf", "stages.0.mixture.code=-.inf"], "stages.0.mixture.web: share inf is not a finite number"),
        (["stages.1.until_tokens=+0"], "stages.1.until_tokens: '+0' adds 0 tokens to the previous boundary 1,000,000"),
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
    for name in ("smollm2-135m", "smollm2-360m", "smollm2-1.7b", "demo", "demo-odm"):
        load_recipe(REPO / "recipes" / f"{name}.yaml")  # rebalance rules are checked against eval.tasks and eval.heldout
    result = smollab("train", "recipes/smollm2-1.7b.yaml", "--dry-run")
    for stage in ("stable-1", "stable-2", "stable-3", "decay", "1,711,376,384", "5,240,000", "decay@4,716,000"):
        assert stage in result.stdout


def test_the_17b_recipes_rules_make_the_papers_stage_3_change_from_its_stage_2_scores():
    from smollab.mix.rules import apply_rules

    stage = load_recipe(REPO / "recipes" / "smollm2-1.7b.yaml").stages[2]
    end_of_stage_2 = {"gsm8k.exact_match": 0.0462, "mmlu_pro.acc_norm": 0.12}  # GSM8K from Table 8; MMLU lagging
    shares, records = apply_rules(stage.rebalance, end_of_stage_2, dict(stage.mixture))
    assert [r["rule"] for r in records if r["fired"]] == ["math-lags", "mmlu-lags"]
    web, math = shares["fineweb_edu"] + shares["dclm"], shares["owm"] + shares["infimm_webmath"]
    assert shares["fineweb_edu"] / web == pytest.approx(0.4) and web == pytest.approx(0.74, abs=0.015)
    assert math == pytest.approx(0.10, abs=0.005)  # "math to about 10%" (§4.4)


@pytest.mark.parametrize("name, steps, decay_start", [
    ("smollm2-1.7b", 5_240_000, 4_716_000),  # nanotron: train_steps 5,240,000, decay from 4,716,000
    ("smollm2-360m", 2_600_000, 2_080_000),
    ("smollm2-135m", 2_000_000, 1_600_000),
])
def test_shipped_recipes_run_nanotrons_steps_and_decay_start(name, steps, decay_start):
    from smollab.train.plan import stage_rows

    from smollab.train.schedule import WSD

    recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
    assert stage_rows(recipe)[-1]["steps"][1] == steps
    assert WSD(recipe.schedule, recipe.optim.lr, steps).decay_start == decay_start


def test_dry_run_counts_parameters_with_the_recipes_tokenizer(tmp_path):
    import yaml

    tree = copy.deepcopy(BASE) | {"model": {"preset": "micro"}, "tokenizer": {"source": "smollm2"}}
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(tree))
    result = smollab("train", str(tmp_path / "micro.yaml"), "--dry-run")
    # micro with its own 8,192-token vocab has 622,912 parameters; with SmolLM2's 49,152 tokens, 3,244,352
    assert "3,244,352 parameters" in result.stdout.replace("\n", " ")


def test_relative_boundaries_stay_relative_when_yaml_would_read_them_as_integers(tmp_path):
    import yaml

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(BASE).replace("until_tokens: +1e6", "until_tokens: +1000000"))
    assert "+1000000" in (tmp_path / "r.yaml").read_text()
    assert load_recipe(tmp_path / "r.yaml").total_tokens == 2_000_000
    assert load_recipe(tmp_path / "r.yaml", ["stages.1.until_tokens=+500"]).total_tokens == 1_000_500


def test_a_recipe_that_is_a_directory_or_not_utf8_is_one_line_for_every_verb(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    for bad, expected in (("dir.yaml", "is a directory, not a file"), ("latin1.yaml", "is not UTF-8 text")):
        # train and tokenize read recipes through the first, curate through the second
        for verb in ("train", "curate"):
            result = smollab(verb, str(tmp_path / bad), check=False)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


def test_the_17b_recipe_takes_stage_3_code_and_infimm_text_as_the_paper_describes():
    recipe = load_recipe(REPO / "recipes" / "smollm2-1.7b.yaml")
    stage_3 = recipe.stages[2].mixture
    assert {"stack_edu", "starcoder2_small_langs", "jupyter"} <= set(stage_3) and "starcoderdata" not in stage_3
    assert sum(stage_3[s] for s in ("stack_edu", "starcoder2_small_langs", "jupyter")) == pytest.approx(0.16)
    infimm = recipe.data.sources["infimm_webmath"]
    assert infimm.where == {"metadata.ft_lang_label": "__label__en"} and infimm.text == "text_list" and infimm.text_join
