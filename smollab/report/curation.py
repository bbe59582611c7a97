"""The curation section: the funnel of ``curation_report.json``, why documents were dropped, and the classifier.

Only what ``smollab curate`` wrote is shown: its report already merged datatrove's per-task stats, so
the numbers here are the ones ``smollab curate`` printed. "Kept" is a step's documents out over its
documents in, step by step (not over what was read), so each row says what that one step removed;
the trade-off is that the overall yield must be read off the last row against the first.
"""

from __future__ import annotations

from smollab.report import plots
from smollab.report.collect import Curation
from smollab.report.document import Figure, Table, num, pct


def curation_blocks(part: Curation) -> list:
    report = part.report or {}
    funnel = [row for row in report.get("funnel", []) if isinstance(row, dict) and "step" in row]
    blocks = []
    if funnel:
        exempt = any("exempt" in row for row in funnel)  # documents of inputs the heuristics skip (curated sources)
        rows = []
        for row in funnel:
            dropped = ", ".join(f"{k} {int(v):,}" for k, v in row.get("dropped", {}).items() if v)
            rows.append([row["step"], num(int(row["docs_in"])), num(int(row["docs_out"])),
                         pct(row["docs_out"] / row["docs_in"]) if row["docs_in"] else "–", num(int(row["tokens_in"])),
                         num(int(row["tokens_out"])), *([num(row.get("exempt"))] if exempt else []), dropped or "none"])
        blocks.append(Table(["step", "docs in", "docs out", "docs kept", "tokens in", "tokens out",
                             *(["exempt docs"] if exempt else []), "dropped (per reason)"],
                            rows, "curation_report.json funnel, in pipeline order"))
        if png := plots.funnel([(r["step"], r["docs_in"], r["docs_out"], r["tokens_in"], r["tokens_out"]) for r in funnel]):
            blocks.append(Figure("Curation funnel", png, "grey: what entered the step; green: what it kept"))
        reasons = [(f"{r['step']}: {k}", v) for r in funnel for k, v in r.get("dropped", {}).items()]
        if png := plots.drop_reasons(reasons):
            blocks.append(Figure("Drop reasons", png, "documents each step dropped, per reason"))
    facts = []
    if extraction := report.get("extraction"):
        facts += [["extraction: pages / extracted / timeouts / errors",
                   " / ".join(num(extraction.get(k)) for k in ("pages", "extracted", "timeouts", "errors"))]]
    if dedup := report.get("dedup"):
        facts += [["MinHash dedup: clusters / duplicates removed",
                   f"{num(dedup.get('clusters'))} / {num(dedup.get('duplicates_removed'))}"]]
    if decontam := report.get("decontam"):
        by_task = ", ".join(f"{t} {num(n)}" for t, n in decontam.get("by_task", {}).items() if n)
        facts += [["decontamination: removed", f"{num(decontam.get('removed'))}" + (f" ({by_task})" if by_task else "")]]
    if annotation := report.get("annotation"):
        histogram = ", ".join(f"{k}: {num(v)}" for k, v in annotation.get("histogram", {}).items())
        facts += [["annotation: rubric / backend", f"{annotation.get('rubric')} / {annotation.get('backend')}"],
                  ["annotation: annotated / unparseable",
                   f"{num(annotation.get('annotated'))} / {num(annotation.get('unparseable'))}"],
                  ["annotation: score histogram", histogram or "–"]]
    if facts:
        blocks.append(Table(["quantity", "value"], facts, "curation_report.json"))
    if bands := (report.get("score") or {}).get("bands"):
        blocks.append(Table(["int_score", "scored", "keep fraction", "kept", "dropped"],
                            [[band, num(b.get("scored")), num(b.get("keep_fraction"), 2), num(b.get("kept")),
                              num(b.get("dropped"))] for band, b in bands.items()],
                            f"keeping by classifier score (threshold {report['score'].get('threshold')})"))
    if part.classifier:
        blocks += classifier_blocks(part.classifier)
    return blocks


def classifier_blocks(classifier: dict) -> list:
    metrics, threshold = classifier["metrics"], classifier.get("threshold")
    rows = [[split, *(num(m.get(k)) for k in ("n", "mse", "macro_f1", "binary_f1", "positives"))]
            for split, m in metrics.items() if isinstance(m, dict)]
    blocks = [Table(["split", "documents", "MSE", "macro-F1", f"binary F1 @ {threshold}", "positives"], rows,
                    f"quality classifier ({classifier.get('embedder')} + linear head); held_out was never used to pick it")]
    held = metrics.get("held_out", {})
    if png := plots.confusion(held.get("confusion_matrix"), "Classifier confusion matrix (held-out)"):
        blocks.append(Figure("Classifier confusion matrix", png, "rows: annotated score, columns: predicted score"))
    return blocks
