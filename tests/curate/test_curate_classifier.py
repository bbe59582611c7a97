import numpy as np

from curate_helpers import rows
from smollab.curate.classifier import Classifier, train_classifier
from smollab.curate.config import ClassifierConfig


def test_classifier_learns_math_vs_web_and_round_trips(tmp_path):
    math = [f"{r['question']}\n{r['answer']}" for r in rows("math_gsm8k_train", 60)]
    web = [r["text"] for r in rows("web_c4_samples", 60)]
    texts, targets = math + web, [4.0] * len(math) + [1.0] * len(web)
    cfg = ClassifierConfig(max_length=64, epochs=100, val_fraction=0.25)
    classifier = train_classifier(texts, targets, cfg, max_score=5, threshold=3)
    held = classifier.info["metrics"]["held_out"]
    assert held["n"] == 30 and held["positives"] == 15
    assert held["binary_f1"] > 0.9, held
    assert sum(map(sum, held["confusion_matrix"])) == 30
    classifier.save(tmp_path / "clf")
    loaded = Classifier.load(tmp_path / "clf")
    sample = texts[:3] + texts[-3:]
    np.testing.assert_allclose(loaded.predict(sample), classifier.predict(sample), rtol=1e-5, atol=1e-5)
    assert loaded.info["metrics"] == classifier.info["metrics"]
