"""The sweep comparison: numbers read back from the variants' own logs, seeds collapsed by hand-checked arithmetic."""

import json
import math
from pathlib import Path

import pytest
import yaml

from smollab.experiments.sweep_report import write_report
from smollab.recipe import dump_recipe, validate_tree
from tests.conftest import recipe_tree
from tests.experiments.test_sweep import HELDOUT, MIXTURES, ablate, events, one_thread, write_sweep  # noqa: F401


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_self_contained(page: str) -> None:
    assert page.count("data:image/png;base64,") >= 2
    assert "<script" not in page and "http://" not in page and "https://" not in page and "src='/" not in page


def test_two_variants_compare_by_their_own_logs_and_a_rerun_retrains_nothing(tmp_path, shards):
    sweep = write_sweep(tmp_path, shards)
    out = tmp_path / "sweep"
    printed = ablate(sweep)
    assert "[1/2] web-heavy: done" in printed and "[2/2] code-heavy: done" in printed
    comparison = json.loads((out / "comparison.json").read_text())
    rows = {row["config"]: row for row in comparison["rows"]}
    assert set(rows) == {"web-heavy", "code-heavy"} and comparison["target"] == {"name": "heldout.mean", "direction": "lower"}
    for name, row in rows.items():
        heldout = jsonl(out / name / "evals.jsonl")[-1]["heldout"]
        last_step = jsonl(out / name / "log.jsonl")[-1]
        assert row["status"] == "finished" and row["tokens"] == last_step["tokens"] == 4096
        assert row["values"]["loss"]["mean"] == last_step["loss"]
        for source, loss in heldout.items():
            assert row["values"][f"heldout.{source}"] == {"mean": loss, "stderr": None, "n": 1, "stderr_of": None}
        assert row["target"]["mean"] == pytest.approx(sum(heldout.values()) / len(heldout))
    best = min(rows.values(), key=lambda r: r["target"]["mean"])
    assert comparison["rows"][0]["config"] == best["config"] and best["best"]
    assert sorted(comparison["heldout_sources"]) == ["code", "math", "web"]
    markdown = (out / "comparison.md").read_text()
    assert markdown.count("| web-heavy |") + markdown.count("| **web-heavy** |") == 1 and "code-heavy" in markdown
    assert f"{best['target']['mean']:.4f}" in markdown
    assert_self_contained((out / "report.html").read_text())
    plan = json.loads((out / "sweep.json").read_text())
    assert [(v["name"], v["values"]) for v in plan["variants"]] == list(zip(MIXTURES["names"],
                                                                            [{MIXTURES["field"]: m} for m in MIXTURES["values"]]))
    recipe = yaml.safe_load((out / "web-heavy" / "recipe.yaml").read_text())
    assert recipe["stages"][0]["mixture"] == MIXTURES["values"][0] and recipe["out"] == str(out / "web-heavy")

    written = {name: (out / name).read_bytes() for name in ("comparison.json", "comparison.md", "report.html")}
    for name in written:
        (out / name).unlink()
    ablate(sweep, "--report")  # rebuilt from the run directories alone, identically
    assert {name: (out / name).read_bytes() for name in written} == written

    logs = {name: (out / name / "log.jsonl").read_bytes() for name in rows}
    ablate(sweep)
    assert events(out)[-2:] == [("web-heavy", "skipped"), ("code-heavy", "skipped")]
    assert {name: (out / name / "log.jsonl").read_bytes() for name in rows} == logs


def fake_variant(out: Path, shards, name: str, seed: int, heldout: dict, acc_norm: float, loss: float,
                 finished: bool = True, stderr: dict | None = None) -> dict:
    """A run directory as training leaves it (recipe, log, evals, checkpoint meta, export), with chosen numbers."""
    run = out / name
    recipe = validate_tree(recipe_tree(run, *shards, eval=HELDOUT | {"tasks": ["arc_easy"]}))
    run.mkdir(parents=True)
    dump_recipe(recipe, run / "recipe.yaml")
    step = 8 if finished else 4
    (run / "checkpoints" / f"step-{step}").mkdir(parents=True)
    (run / "checkpoints" / f"step-{step}" / "meta.json").write_text("{}")
    (run / "hf" / f"step-{step}").mkdir(parents=True)
    (run / "log.jsonl").write_text("".join(json.dumps({"step": s, "tokens": (s + 1) * 1024, "loss": loss + step - 1 - s}) + "\n"
                                           for s in range(step)))
    line = {"step": step, "tokens": step * 1024, "stage": "two", "heldout": heldout,
            "metrics": {"arc_easy": {"acc": acc_norm - 0.1, "acc_norm": acc_norm}}, "items": {"arc_easy": 4}}
    (run / "evals.jsonl").write_text(json.dumps(line | ({"stderr": stderr} if stderr else {})) + "\n")
    return {"name": name, "config": name.rsplit("_", 1)[0], "seed": seed, "values": {}, "total_tokens": 8192}


def test_seeds_collapse_into_mean_and_standard_error_and_incomplete_runs_are_marked(tmp_path, shards):
    out = tmp_path / "sweep"
    variants = [fake_variant(out, shards, f"wide_seed-{seed}", seed, {"web": web, "code": 5.0}, acc, loss)
                for seed, web, acc, loss in [(1, 6.0, 0.25, 3.0), (2, 6.2, 0.5, 3.2), (3, 6.4, 0.75, 3.4)]]
    variants.append(fake_variant(out, shards, "narrow_seed-1", 1, {"web": 5.0, "code": 5.0}, 0.4, 2.0,
                                 stderr={"arc_easy": {"acc_norm": 0.05, "acc": 0.04}}))
    variants.append(fake_variant(out, shards, "partial_seed-1", 1, {"web": 4.0, "code": 4.0}, 0.3, 1.0, finished=False))
    (out / "sweep.json").write_text(json.dumps({"name": "synthetic", "mode": "axes", "variants": variants,
                                                "target": {"name": "heldout.mean", "direction": "lower"}}))
    comparison, regmix_result = write_report(out)
    assert regmix_result is None
    rows = {row["config"]: row for row in comparison["rows"]}
    wide = rows["wide"]["values"]
    spread = math.sqrt(((6.0 - 6.2) ** 2 + (6.4 - 6.2) ** 2) / 2)  # sample standard deviation of 6.0, 6.2, 6.4
    assert wide["heldout.web"]["mean"] == pytest.approx(6.2) and wide["heldout.web"]["stderr"] == pytest.approx(spread / math.sqrt(3))
    assert wide["heldout.web"]["stderr_of"] == "seeds" and wide["heldout.code"]["stderr"] == 0.0
    assert wide["heldout.mean"]["mean"] == pytest.approx(5.6) and wide["heldout.mean"]["stderr"] == pytest.approx(0.1 / math.sqrt(3))
    assert wide["arc_easy.acc_norm"]["mean"] == pytest.approx(0.5)
    assert wide["arc_easy.acc_norm"]["stderr"] == pytest.approx(0.25 / math.sqrt(3))
    assert wide["loss"]["mean"] == pytest.approx(3.2) and rows["wide"]["seeds"] == [1, 2, 3]
    narrow = rows["narrow"]["values"]
    assert narrow["arc_easy.acc_norm"] == {"mean": 0.4, "stderr": 0.05, "n": 1, "stderr_of": "items"}
    assert narrow["heldout.web"]["stderr"] is None
    assert comparison["columns"][:2] == ["heldout.mean", "arc_easy.acc_norm"]
    # sorted by heldout.mean, lower first; the incomplete run ranks by its latest checkpoint, marked, never best
    assert [row["config"] for row in comparison["rows"]] == ["partial", "narrow", "wide"]
    assert [row["best"] for row in comparison["rows"]] == [False, True, False]
    assert rows["partial"]["status"] == "partial" and rows["partial"]["tokens"] == 4096 and rows["narrow"]["status"] == "finished"
    curve = rows["wide"]["curves"]["loss"]
    assert curve[0] == [1024, pytest.approx(10.2), pytest.approx(0.2 / math.sqrt(3))]
    markdown = (out / "comparison.md").read_text()
    assert "| 1 | partial | 1 | running/incomplete | 4,096 / 8,192 | 4.0000 |" in markdown
    assert "| **2 best** | **narrow** | **1** | **finished** |" in markdown
    assert "| 0.5000 ± 0.1443 |" in markdown and "0.4000 ± 0.0500*" in markdown
    assert_self_contained((out / "report.html").read_text())
