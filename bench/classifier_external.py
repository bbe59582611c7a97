"""External check of a smollab quality classifier on DCLM's 499 human-labelled web pages.

Measures how well a classifier trained by `smollab curate` (on LLM annotations of *other*
documents, never on these labels) ranks the pages: ROC-AUC of its score against the human label,
and binary F1 of `int_score >= threshold`. Peer baseline on the same set: document length (AUC,
and F1 when keeping the same number of pages as the classifier keeps).
Run:  .venv/bin/python bench/classifier_external.py runs/curate-demo/classifier [--threshold 3]
"""

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from smollab.curate.classifier import Classifier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrain" / "web_dclm_human_labeled.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("classifier", type=Path)
    parser.add_argument("--threshold", type=int, default=None, help="default: the threshold the classifier was trained for")
    args = parser.parse_args()
    rows = [json.loads(line) for line in gzip.open(DATA, "rt")]
    labels = np.array([r["label"] for r in rows])
    clf = Classifier.load(args.classifier)
    threshold = args.threshold if args.threshold is not None else clf.info.get("threshold", 3)
    scores = clf.predict([r["text"] for r in rows])
    keep = clf.int_scores(scores) >= threshold
    length = np.array([len(r["text"]) for r in rows])
    length_keep = np.zeros(len(rows), dtype=bool)
    length_keep[np.argsort(-length)[: keep.sum()]] = True
    result = {
        "n": len(rows), "positives": int(labels.sum()), "threshold": threshold, "kept": int(keep.sum()),
        "classifier": {"roc_auc": roc_auc_score(labels, scores), "binary_f1": f1_score(labels, keep, zero_division=0)},
        "length_baseline": {"roc_auc": roc_auc_score(labels, length), "binary_f1_same_keep": f1_score(labels, length_keep, zero_division=0)},
        "keep_all_f1": f1_score(labels, np.ones_like(labels)),
        "trained_on": {k: clf.info.get(k) for k in ("rubric", "annotations")},
    }
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
