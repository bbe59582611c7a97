"""docs/recipe-reference.md is generated from the schemas and must stay equal to a fresh render."""

from pathlib import Path

from smollab.recipe import Recipe
from smollab.recipe_reference import COMMAND, render

REPO = Path(__file__).resolve().parents[1]


def test_committed_reference_equals_a_fresh_render():
    committed = (REPO / "docs" / "recipe-reference.md").read_text(encoding="utf-8")
    assert committed == render(), f"docs/recipe-reference.md is out of date with the schemas; regenerate it: {COMMAND}"


def test_reference_covers_every_part_nested_sections_and_their_fields():
    page = render()
    for heading in ("## Pretraining recipe", "## Curation", "## Post-training", "## Synthetic data",
                    "### `data.sources.<name>` — SourceConfig", "### `stages.<i>.rebalance` (policy: odm) — OdmPolicy",
                    "### `stages.<i>.rebalance.rules.<i>.move` — Move", "### `curate.executor.slurm` — SlurmConfig",
                    "### DPO recipe · `train` — DPOTrainConfig", "### `synth.rewrite.source` — SourceConfig"):
        assert f"\n{heading}\n" in page
    pretraining = page.split("## Curation")[0]
    top = pretraining.split("### top level — Recipe")[1].split("###")[0]
    assert [line.split("`")[1] for line in top.splitlines() if line.startswith("| `")] == list(Recipe.model_fields)
    assert "| `tokens_per_step` | `token count` | `1048576` |" in page
    assert "| `precision` | `\"auto\" \\| \"bf16\" \\| \"fp32\"` | `auto` |" in page
    assert "| `from` | `str` | required |" in page  # an alias is the name a recipe writes
    assert "runs/&lt;name&gt;" in page  # angle brackets outside code are escaped, not swallowed as HTML
