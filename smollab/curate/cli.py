"""``smollab curate RECIPE [overrides] --out DIR``: load the recipe, run or resume curation, report.

A full training recipe (with ``data``/``stages``) is validated by ``smollab.recipe``; a curate-only
YAML (just ``name`` and ``curate``) is validated by ``CurateRecipe``, with the same dotted
overrides and the same one-line error format, so users need not invent a training setup to curate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from smollab.curate.config import CurateConfig, CurateRecipe
from smollab.errors import SmollabError
from smollab.recipe import apply_overrides, format_validation_error, read_tree, validate_tree


def load_curate_config(path: Path, overrides: list[str]) -> tuple[str, CurateConfig]:
    """``(name, curate section)`` of a full or curate-only recipe; problems are one SmollabError line."""
    tree = read_tree(path, "name and curate", example="recipes/curate-demo.yaml")
    apply_overrides(tree, overrides)
    if "data" in tree or "stages" in tree:
        recipe = validate_tree(tree, str(path))
        name, curate = recipe.name, recipe.curate
    else:
        try:
            only = CurateRecipe.model_validate(tree)
        except ValidationError as err:
            raise SmollabError(format_validation_error(str(path), err)) from None
        name, curate = only.name, only.curate
    if curate is None:
        raise SmollabError(f"{path}: no curate: section; add one (see recipes/curate-demo.yaml)")
    return name, curate


def curate(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML with a curate: section (full or curate-only)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. curate.score.threshold=2")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (default: curate.out or runs/<name>/curate)")] = None,
) -> None:
    """Curate a corpus: read → filters → MinHash dedup → decontaminate → annotate → classifier → score.

    Example: smollab curate recipes/curate-demo.yaml --out runs/curate-demo
    Re-running the same command resumes: finished datatrove tasks are skipped.
    """
    from smollab.curate.pipeline import all_complete, run_curation
    from smollab.curate.report import build_report, print_summary

    name, cfg = load_curate_config(recipe, overrides or [])
    target = out or Path(cfg.out or f"runs/{name}/curate")
    seconds = run_curation(cfg, target, name, log=lambda line: typer.echo(line, err=True))
    if not all_complete(cfg, target):
        typer.echo(f"stages submitted to {cfg.executor.kind}; run the same command again once they finish to write the report", err=True)
        return
    print_summary(build_report(cfg, target, seconds))
