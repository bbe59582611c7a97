"""``curation_report.json`` and its summary table, built only from what the stages wrote to disk.

The funnel is read back from datatrove's per-task stats files (``logs/<stage>/stats/*.json``,
merged across tasks), never from counters kept in memory by the run, so a resumed run — where
finished tasks were skipped — reports the same numbers as an uninterrupted one. The trade-off:
the report depends on block names and stat keys (``FunnelCount``'s ``docs``/``tokens``,
``KeepByScore``'s ``kept_int_score_<b>``, datatrove's ``total``/``forwarded``/``dropped_*``), which
this module, ``filters.py`` and ``score.py`` own.
"""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.utils.stats import PipelineStats
from rich.console import Console
from rich.table import Table

from smollab.console import table_console
from smollab.curate.config import CurateConfig
from smollab.curate.filters import HEURISTICS


def _count(value) -> float:
    if isinstance(value, dict):
        return value.get("total", 0)
    return value or 0


def stage_stats(out: Path, stage: str) -> dict[str, dict]:
    """Block name → merged stats of one stage (empty when the stage did not run)."""
    files = sorted((out / "logs" / stage / "stats").glob("*.json"))
    if not files:
        return {}
    merged = sum((PipelineStats.from_json(json.loads(f.read_text())) for f in files), start=PipelineStats())
    blocks = {}
    for block in json.loads(merged.to_json()):
        name = block["name"].split(": ", 1)[-1]
        blocks[name] = {k: _count(v) for k, v in block["stats"].items()} | {"seconds": _count(block["time_stats"])}
    return blocks


def _funnel(out: Path) -> list[dict]:
    filt, dedup_st, score_st = stage_stats(out, "filter"), stage_stats(out, "dedup_decontam"), stage_stats(out, "score")
    rows = []
    previous = filt.get("read")
    if previous:
        rows.append({"step": "read", "docs_in": previous["docs"], "docs_out": previous["docs"],
                     "tokens_in": previous["tokens"], "tokens_out": previous["tokens"], "dropped": {}})
    for key in HEURISTICS:
        block = filt.get(key)
        if block is None or previous is None:
            continue
        rows.append({
            "step": key, "docs_in": block.get("total", 0), "docs_out": block.get("forwarded", 0),
            "tokens_in": rows[-1]["tokens_out"], "tokens_out": block.get("doc_len_tokens", 0),
            "exempt": block.get("exempt", 0),
            "dropped": {k.removeprefix("dropped_"): v for k, v in block.items() if k.startswith("dropped_")},
        })
    previous = filt.get("filters")
    for step, block in (("dedup", dedup_st.get("dedup")), ("decontam", dedup_st.get("decontam")), ("score", score_st.get("score"))):
        if block is None or previous is None:
            continue
        rows.append({"step": step, "docs_in": previous["docs"], "docs_out": block["docs"],
                     "tokens_in": previous["tokens"], "tokens_out": block["tokens"],
                     "dropped": {"removed": previous["docs"] - block["docs"]}})
        previous = block
    return rows


def merge_removed_ids(out: Path) -> Path:
    """All decontamination removals, one JSON line each (id, task, item_id, ngram), sorted by id."""
    lines = [line for f in sorted((out / "decontam").glob("removed_*.jsonl")) for line in f.read_text().splitlines() if line]
    target = out / "decontaminated_ids.jsonl"
    target.write_text("".join(line + "\n" for line in sorted(lines, key=lambda s: json.loads(s)["id"])))
    return target


def score_bands(cfg: CurateConfig, out: Path) -> dict[str, dict]:
    """Per ``int_score`` band: documents scored, the keep fraction applied, documents kept and dropped."""
    stats = stage_stats(out, "score")
    scored, kept = stats.get("🎯 score", {}), stats.get("✂️ keep", {})
    bands = sorted(int(k.removeprefix("int_score_")) for k in scored if k.startswith("int_score_"))
    return {
        str(band): {"scored": scored[f"int_score_{band}"], "keep_fraction": cfg.score.keep_fraction(band),
                    "kept": kept.get(f"kept_int_score_{band}", 0), "dropped": kept.get(f"dropped_int_score_{band}", 0)}
        for band in bands
    }


def build_report(cfg: CurateConfig, out: Path, seconds: dict[str, float]) -> dict:
    out = Path(out)
    report: dict = {"out": str(out), "funnel": _funnel(out), "seconds_this_run": {k: round(v, 2) for k, v in seconds.items()}}
    extract = stage_stats(out, "filter").get("⛏ Trafilatura")
    if extract:
        report["extraction"] = {"pages": extract.get("total", 0), "extracted": extract.get("forwarded", 0),
                                "timeouts": extract.get("timeout", 0), "errors": extract.get("clean_error", 0)}
    cluster = stage_stats(out, "minhash_cluster")
    if cluster:
        block = next(iter(cluster.values()))
        report["dedup"] = {"clusters": block.get("clusters", 0), "duplicates_removed": block.get("to_remove", 0)}
    decontam = stage_stats(out, "dedup_decontam").get("🧪 decontam")
    if decontam is not None:
        report["decontam"] = {
            "removed": decontam.get("dropped", 0),
            "by_task": {k.removeprefix("task_"): v for k, v in decontam.items() if k.startswith("task_")},
            "ids_file": str(merge_removed_ids(out)),
        }
    annotate = stage_stats(out, "annotate").get("⚖️ annotate")
    if annotate:
        report["annotation"] = {
            "rubric": cfg.annotate.rubric, "backend": cfg.annotate.backend, "annotated": annotate.get("annotated", 0),
            "newly_asked": annotate.get("asked", 0), "unparseable": annotate.get("unparseable", 0),
            "unparseable_by_reason": {k.removeprefix("unparseable_"): v for k, v in annotate.items() if k.startswith("unparseable_")},
            "histogram": {k.removeprefix("annotation_"): v for k, v in sorted(annotate.items()) if k.startswith("annotation_")},
            "seconds": round(annotate["seconds"], 2),
        }
    classifier_dir = Path(cfg.classifier.pretrained) if cfg.classifier and cfg.classifier.pretrained else out / "classifier"
    if (classifier_dir / "config.json").exists():
        report["classifier"] = json.loads((classifier_dir / "config.json").read_text()) | {"dir": str(classifier_dir)}
    if stage_stats(out, "score"):
        report["score"] = {"threshold": cfg.score.threshold, "keep": cfg.score.keep, "seed": cfg.score.seed,
                           "bands": score_bands(cfg, out)}
    report["curated"] = str(out / "curated")
    (out / "curation_report.json").write_text(json.dumps(report, indent=2))
    return report


def print_summary(report: dict, console: Console | None = None) -> None:
    table = Table(title=f"curation funnel → {report['curated']}")
    for column in ("step", "docs in", "docs out", "tokens in", "tokens out", "dropped"):
        table.add_column(column, justify="left" if column in ("step", "dropped") else "right")
    for row in report["funnel"]:
        dropped = ", ".join(f"{k} {int(v)}" for k, v in row["dropped"].items() if v)
        table.add_row(row["step"], f"{int(row['docs_in']):,}", f"{int(row['docs_out']):,}",
                      f"{int(row['tokens_in']):,}", f"{int(row['tokens_out']):,}", dropped)
    console = console or table_console()
    console.print(table)
    if "classifier" in report and "metrics" in report["classifier"]:
        held = report["classifier"]["metrics"]["held_out"]
        console.print(f"classifier held-out (n={held['n']}): MSE {held['mse']:.3f}, macro-F1 {held['macro_f1']:.3f}, "
                      f"binary F1 @{report['classifier']['threshold']} {held['binary_f1']:.3f}")
    if "score" in report:
        bands = report["score"]["bands"].items()
        console.print("int_score bands, kept/scored: "
                      + ", ".join(f"{band}: {int(b['kept'])}/{int(b['scored'])} (keep {b['keep_fraction']:g})" for band, b in bands))
