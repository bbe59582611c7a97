"""`smollab mixture RUN_DIR`: the realised schedule and the tokens consumed per source, read from a run directory."""

import json
from collections import Counter

import pytest

from smollab.data.mixture import MixtureSampler, Schedule
from smollab.data.mixture_report import load_run
from smollab.data.shards import load_streams
from smollab.errors import SmollabError
from smollab.recipe import dump_recipe, validate_tree
from tests.conftest import recipe_tree, smollab

# by hand, as a run's checkpoint stores it: the recipe's stage one split at step 2, stage two set by a rule
SCHEDULE = [
    {"stage": 0, "start_step": 0, "end_step": 2, "shares": {"web": 0.7, "code": 0.3},
     "numerators": {"web": 11744051, "code": 5033165}, "denominator": 1 << 24, "decision": "recipe"},
    {"stage": 0, "start_step": 2, "end_step": 4, "shares": {"web": 0.5, "code": 0.5},
     "numerators": {"web": 8388608, "code": 8388608}, "denominator": 1 << 24, "decision": "odm"},
    {"stage": 1, "start_step": 4, "end_step": 8, "shares": {"web": 0.2, "code": 0.2, "math": 0.6},
     "numerators": {"web": 3355443, "code": 3355443, "math": 10066330}, "denominator": 1 << 24, "decision": "math_lags"},
]


def rows(stdout: str, title: str) -> list[list[str]]:
    """The body rows of the rich table printed under ``title``, cell by cell."""
    table = stdout[stdout.index(title):].split("\n")
    body = [line for line in table[: next(i for i, line in enumerate(table) if line.startswith("└"))] if line.startswith("│")]
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in body]


@pytest.fixture
def run_dir(tmp_path, shards):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-2").mkdir(parents=True)
    (run / "checkpoints" / "step-6").mkdir()
    recipe = validate_tree(recipe_tree(run, *shards))
    dump_recipe(recipe, run / "recipe.resolved.yaml")
    (run / "checkpoints" / "step-2" / "meta.json").write_text(json.dumps({"step": 2, "schedule": SCHEDULE[:1]}))
    (run / "checkpoints" / "step-6" / "meta.json").write_text(json.dumps({"step": 6, "tokens": 6 * 1024, "schedule": SCHEDULE}))
    return run, recipe


def test_the_report_shows_the_newest_checkpoints_schedule_and_the_tokens_it_consumed(run_dir):
    run, recipe = run_dir
    out = smollab("mixture", str(run)).stdout
    assert out.splitlines()[0] == f"{run}: mixture schedule from checkpoints/step-6/meta.json"
    assert rows(out, "mixture schedule") == [
        ["0", "one", "0–2", "2,048", "70.0%", "30.0%", "", "recipe"],
        ["1", "one", "2–4", "2,048", "50.0%", "50.0%", "", "odm"],
        ["2", "two", "4–8", "4,096", "20.0%", "20.0%", "60.0%", "math_lags"],
    ]
    # what the report says was consumed = the samples a sampler under that schedule serves, counted one by one
    sampler = MixtureSampler(recipe, load_streams(recipe.shards_dir, ["web", "code", "math"]), Schedule.from_json(SCHEDULE))
    served = Counter(x.source for step in range(6) for x in sampler.step_samples(step))
    planned = Counter(x.source for step in range(8) for x in sampler.step_samples(step))
    assert sum(served.values()) * 64 == 6 * 1024 and served["math"] > 0
    expected = [[source, f"{served[source] * 64:,}", f"{served[source] * 64 / (6 * 1024):.1%}",
                 f"{served[source] / sampler.windows[(source, 64)]:.3f}", f"{planned[source] * 64:,}",
                 f"{planned[source] / sampler.windows[(source, 64)]:.3f}"] for source in ("web", "code", "math")]
    assert rows(out, "consumed by step 6 of 8 (6,144 tokens)") == expected


def test_before_any_checkpoint_the_report_shows_the_recipes_schedule(run_dir):
    run, _ = run_dir
    for step in (2, 6):
        (run / "checkpoints" / f"step-{step}" / "meta.json").unlink()
    out = smollab("mixture", str(run)).stdout
    assert out.splitlines()[0] == f"{run}: mixture schedule from the recipe (no checkpoint yet)"
    assert [row[:4] + row[-1:] for row in rows(out, "mixture schedule")] == [
        ["0", "one", "0–4", "4,096", "recipe"], ["1", "two", "4–8", "4,096", "recipe"]]
    assert [row[1] for row in rows(out, "consumed by step 0 of 8 (0 tokens)")] == ["0", "0", "0"]


@pytest.mark.parametrize(("where", "message"), [
    ("nope", r"run directory .*/nope does not exist; pass the directory `smollab train` wrote \(its --out\)"),
    (".", r".* has no recipe.resolved.yaml; pass a directory `smollab train` wrote"),
])
def test_a_missing_run_dir_or_recipe_is_one_line(tmp_path, where, message):
    with pytest.raises(SmollabError, match=message) as err:
        load_run(tmp_path / where)
    assert "\n" not in str(err.value)
