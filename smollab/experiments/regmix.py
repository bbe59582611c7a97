"""RegMix: choose a data mixture by regression over small proxy runs (Liu et al. 2024, arXiv 2407.01492).

The loop: ``sample_mixtures`` draws K mixtures from a Dirichlet prior centred on a base mixture; a
sweep trains one tiny proxy per mixture on the same token budget and records a target (a held-out
loss, lower is better, or an eval score, higher is better); ``fit`` regresses target on weights;
``search`` predicts a large sample of candidate mixtures from the same prior and returns the mean of
the top-k. Everything here is pure and seeded: the same inputs give the same mixture.

Design choices:

- The prior. Dirichlet(concentration · centre), where the centre is the base mixture with every
  source that is absent from it (named only in ``sources``) or at share 0 lifted to
  ``absent_share``, then renormalised, so a new source can enter. Higher concentration samples
  closer to the centre. ``min_share`` is kept by an affine shift, ``m + (1 − n·m)·d`` for a
  Dirichlet draw ``d`` over n sources: it always terminates and keeps the prior's shape, at the
  price of moving its mean from ``centre`` to ``m + (1 − n·m)·centre`` (rejection sampling could
  stall when m is large, and clipping piles mass exactly on the floor).
- Readable shares. Mixtures are rounded to 4 decimals and the rounding residual is put on the
  largest share, so they sum to 1 (to float precision) and paste into YAML; ``min_share`` is
  rounded up to that precision first, so rounding cannot take a share below it. Draws that
  coincide after rounding are redrawn, so the K proxies are distinct.
- Candidates come from the same prior as the proxies, as in the paper: a regression on 16–64 points
  is interpolation, trusted only where the proxies are. Trees extrapolate flat and quadratics
  wildly, so a search over the whole simplex would return the model's artefacts.
- The answer is the mean of the top-k predicted candidates (paper: top 100 of ~1M), not the single
  best: a tree ensemble is piecewise constant, so the best prediction is a flat region whose
  "argmax" is an arbitrary point of it, and any fitted model's single best is where its noise
  peaks. The mean is the centre of the predicted-good region. Its own prediction is reported
  beside the top-k mean: if it is much worse, the top candidates sit in separate pockets and
  their average falls between them, so look at the fit before trusting the answer.
- Fit quality is cross-validated: 10 folds (leave-one-out with 10 proxies or fewer), assigned by
  a seeded permutation, so the cost is at most 10 extra fits whatever K is. Held-out predictions
  are pooled over the folds into an R² (against the mean of all targets; negative means worse
  than predicting the mean) and a Spearman rank correlation, which is what matters for picking
  the best mixture. ``min_proxies`` asks for two proxies per source and never fewer than 8,
  below which a held-out rank correlation says little. Constant held-out predictions carry no
  ranking and count as Spearman 0. With no signal, k-fold CV of a mean-like predictor tends to a
  *negative* Spearman (each fold's training mean moves away from its held-out targets), so read
  anything under ~0.5 as "no usable signal".
- ``method="lightgbm"`` is the paper's regressor with small-data settings (``LIGHTGBM_PARAMS``):
  leaves of 3 samples and single-sample bins so trees split at all on 16–64 points, 7 leaves and
  300 rounds at learning rate 0.05 so no one tree memorises, each round on a seeded 70% of the
  proxies (bagging smooths the piecewise-constant fit: over 10 seeds of 32 proxies on 5 sources
  it cut the worst L1 distance from the answer to the optimum from 0.33 to 0.22), one thread and
  ``deterministic`` for bit-reproducible fits. Trees need many points: at that size the quadratic
  ridge below fitted a smooth synthetic bowl far better (median L1 error 0.03 vs 0.15); the paper
  used 512 proxies. Compare the two fits' ``cv_spearman`` when K is small.
- ``method="linear"`` (the fallback, and the paper's baseline family) is ridge regression on the
  weights, their squares and pairwise products: a full quadratic in the mixture, the smallest model
  with an interior optimum (a model linear in the weights always puts the best mixture on a
  vertex of the simplex). Features are standardised and the ridge strength is chosen from a grid
  by closed-form leave-one-out on the training proxies, so CV of the whole procedure stays honest.
- ``method="auto"`` takes LightGBM when it imports, else the fallback; ``MixtureFit.method`` says
  which ran.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import Callable

import numpy as np
import yaml
from scipy.stats import spearmanr

from smollab.errors import SmollabError

DECIMALS = 4
CV_FOLDS = 10
LIGHTGBM_PARAMS = dict(
    n_estimators=300, learning_rate=0.05, num_leaves=7, min_child_samples=3, min_data_in_bin=1,
    subsample=0.7, subsample_freq=1,
    n_jobs=1, deterministic=True, force_col_wise=True, verbose=-1,
)
RIDGE_STRENGTHS = np.logspace(-3, 3, 13)
Model = Callable[[np.ndarray], np.ndarray]


def min_proxies(sources: int) -> int:
    """Proxies needed to fit and cross-validate: two per source, never fewer than 8."""
    return max(8, 2 * sources)


def sample_mixtures(base: dict[str, float], k: int, *, seed: int, concentration: float = 10.0,
                    min_share: float = 0.0, sources: list[str] | None = None,
                    absent_share: float = 0.05) -> list[dict[str, float]]:
    """K distinct mixtures from Dirichlet(concentration · centre), rounded to 4 decimals, each summing to 1.

    The mixtures range over ``base``'s sources plus any extra in ``sources``; a source absent from
    ``base`` or at share 0 enters the centre at ``absent_share``. Every share is ≥ ``min_share``."""
    if k < 1:
        raise SmollabError(f"k={k} mixtures requested; sample at least one")
    names, alpha, floor = _prior(base, sources, concentration, min_share, absent_share)
    rng = np.random.default_rng(seed)
    drawn: dict[tuple[float, ...], None] = {}
    for _ in range(100):
        for row in _draw(alpha, floor, k - len(drawn), rng):
            drawn.setdefault(tuple(_readable(row)), None)
        if len(drawn) == k:
            return [dict(zip(names, row)) for row in drawn]
    raise SmollabError(f"only {len(drawn)} of {k} sampled mixtures are distinct at {DECIMALS} decimals; "
                       f"lower concentration ({concentration:g}) or sample fewer mixtures")


@dataclass(frozen=True)
class MixtureFit:
    """A regression of a proxy target on mixture weights, with its cross-validated quality."""

    sources: tuple[str, ...]
    method: str
    proxies: int
    folds: int
    cv_r2: float
    cv_spearman: float
    model: Model = field(repr=False, compare=False)

    def predict(self, mixtures: list[dict[str, float]]) -> np.ndarray:
        """Predicted target per mixture; each mixture must name exactly the fitted sources."""
        return self.model(_weights(mixtures, self.sources))

    @property
    def quality(self) -> dict:
        return {"method": self.method, "proxies": self.proxies, "folds": self.folds,
                "cv_r2": self.cv_r2, "cv_spearman": self.cv_spearman}


def fit(mixtures: list[dict[str, float]], targets: list[float], *, method: str = "auto", seed: int = 0) -> MixtureFit:
    """Regress ``targets`` on ``mixtures`` with ``method`` ("lightgbm", "linear" or "auto")."""
    if not mixtures:
        raise SmollabError("no proxy mixtures given; run the sweep over sample_mixtures(...) first")
    sources = tuple(mixtures[0])
    weights = _weights(mixtures, sources)
    y = _targets(targets, len(mixtures))
    needed = min_proxies(len(sources))
    if len(y) < needed:
        raise SmollabError(f"{len(y)} proxies are too few to fit and cross-validate a regression over "
                           f"{len(sources)} sources; train at least {needed} (two per source, never under 8)")
    if np.ptp(y) == 0:
        raise SmollabError("every proxy has the same target, so there is nothing to regress; check that "
                           "the sweep recorded each proxy's own metric")
    method = _resolve(method)
    train = _fit_lightgbm if method == "lightgbm" else _fit_quadratic_ridge
    folds = min(CV_FOLDS, len(y))
    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    held_out = np.empty_like(y)
    for fold in range(folds):
        test = fold_of == fold
        held_out[test] = train(weights[~test], y[~test], seed)(weights[test])
    r2 = 1.0 - float(np.sum((y - held_out) ** 2) / np.sum((y - y.mean()) ** 2))
    rho = 0.0 if np.ptp(held_out) == 0 else float(spearmanr(held_out, y).statistic)
    return MixtureFit(sources, method, len(y), folds, r2, rho, train(weights, y, seed))


@dataclass(frozen=True)
class Prediction:
    """The searched mixture, its predicted target, and the quality of the fit behind it."""

    mixture: dict[str, float]
    predicted: float
    top_k_mean: float
    base_predicted: float
    minimize: bool
    candidates: int
    top_k: int
    fit: MixtureFit

    def to_json(self) -> str:
        return json.dumps({"mixture": self.mixture, "predicted": self.predicted, "top_k_mean": self.top_k_mean,
                           "base_predicted": self.base_predicted, "minimize": self.minimize,
                           "candidates": self.candidates, "top_k": self.top_k, "fit": self.fit.quality}, indent=2)

    def recipe_snippet(self) -> str:
        """``mixture: {web: 0.31, code: 0.22, ...}``, ready to paste into a recipe stage."""
        return yaml.safe_dump({"mixture": self.mixture}, default_flow_style=None, sort_keys=False, width=10**6)


def search(fit: MixtureFit, base: dict[str, float], *, minimize: bool, candidates: int = 100_000,
           top_k: int = 100, seed: int = 0, concentration: float = 10.0, min_share: float = 0.0,
           absent_share: float = 0.05) -> Prediction:
    """The mean of the ``top_k`` best-predicted of ``candidates`` mixtures drawn from the proxies' prior.

    Pass the prior exactly as given to ``sample_mixtures`` (``base``, ``concentration``,
    ``min_share``, ``absent_share``): the fit is trusted only where the proxies were sampled."""
    if not 1 <= top_k <= candidates:
        raise SmollabError(f"top_k={top_k} must be between 1 and candidates={candidates}; lower top_k")
    extra = sorted(set(base) - set(fit.sources))
    if extra:
        raise SmollabError(f"base mixture names {', '.join(extra)}, which the fit has not seen; "
                           f"search over the sources the proxies were trained on ({', '.join(fit.sources)})")
    in_fit_order = {name: float(base.get(name, 0.0)) for name in fit.sources}
    _, alpha, floor = _prior(in_fit_order, None, concentration, min_share, absent_share)
    pool = _draw(alpha, floor, candidates, np.random.default_rng(seed))
    scores = fit.model(pool)
    order = np.argsort(scores if minimize else -scores, kind="stable")[:top_k]
    best = dict(zip(fit.sources, _readable(pool[order].mean(axis=0))))
    predicted, base_predicted = fit.predict([best, in_fit_order])
    return Prediction(best, float(predicted), float(scores[order].mean()), float(base_predicted),
                      minimize, candidates, top_k, fit)


def _prior(base: dict[str, float], sources: list[str] | None, concentration: float, min_share: float,
           absent_share: float) -> tuple[list[str], np.ndarray, float]:
    """The sources, the Dirichlet's alpha, and min_share rounded up to the shares' precision."""
    names = list(dict.fromkeys([*base, *(sources or [])]))
    shares = np.array([float(base.get(name, 0.0)) for name in names])
    if not np.all(np.isfinite(shares)) or np.any(shares < 0) or abs(shares.sum() - 1.0) > 1e-6:
        raise SmollabError(f"base mixture {base} must have non-negative shares summing to 1; fix the base mixture")
    if len(names) < 2:
        raise SmollabError("a mixture search needs at least two sources; add sources to the base or the sources list")
    if concentration <= 0 or not 0 < absent_share < 1:
        raise SmollabError(f"concentration ({concentration:g}) must be > 0 and absent_share ({absent_share:g}) "
                           "in (0, 1); fix the prior's settings")
    floor = math.ceil(min_share * 10**DECIMALS - 1e-9) / 10**DECIMALS
    if not (0 <= floor and floor * len(names) < 1):
        raise SmollabError(f"min_share {min_share:g} over {len(names)} sources leaves no room to mix; "
                           f"use a min_share below {1 / len(names):.4f}")
    centre = np.where(shares > 0, shares, absent_share)
    return names, concentration * centre / centre.sum(), floor


def _draw(alpha: np.ndarray, floor: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` raw mixtures from the prior, each share ≥ floor."""
    return floor + (1.0 - floor * len(alpha)) * rng.dirichlet(alpha, size=n)


def _readable(shares: np.ndarray) -> list[float]:
    """Shares rounded to DECIMALS, the rounding residual put on the largest, so they sum to 1."""
    rounded = np.round(shares / shares.sum(), DECIMALS)
    largest = int(np.argmax(rounded))
    rounded[largest] = round(rounded[largest] + 1.0 - rounded.sum(), DECIMALS)
    return [float(share) for share in rounded]


def _weights(mixtures: list[dict[str, float]], sources: tuple[str, ...]) -> np.ndarray:
    for index, mixture in enumerate(mixtures):
        if set(mixture) != set(sources):
            missing, extra = sorted(set(sources) - set(mixture)), sorted(set(mixture) - set(sources))
            raise SmollabError(f"mixture {index} is over different sources (missing: {', '.join(missing) or '-'}; "
                               f"extra: {', '.join(extra) or '-'}); give every mixture the same sources, "
                               "writing 0 for a source it does not use")
    return np.array([[float(mixture[name]) for name in sources] for mixture in mixtures])


def _targets(targets: list[float], proxies: int) -> np.ndarray:
    if len(targets) != proxies:
        raise SmollabError(f"{len(targets)} targets for {proxies} mixtures; give one target per proxy, in order")
    y = np.asarray(targets, dtype=float)
    for index, value in enumerate(y):
        if not math.isfinite(value):
            raise SmollabError(f"target of proxy {index} is {value}; rerun that proxy or drop it with its mixture")
    return y


def _resolve(method: str) -> str:
    if method not in ("auto", "lightgbm", "linear"):
        raise SmollabError(f"unknown regression method '{method}'; use 'auto', 'lightgbm' or 'linear'")
    if method == "linear":
        return method
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        if method == "lightgbm":
            raise SmollabError("method='lightgbm' needs LightGBM; pip install lightgbm==4.7.0 or use method='linear'")
        return "linear"
    return "lightgbm"


def _fit_lightgbm(weights: np.ndarray, y: np.ndarray, seed: int) -> Model:
    import lightgbm

    model = lightgbm.LGBMRegressor(random_state=seed, **LIGHTGBM_PARAMS).fit(weights, y)
    return lambda rows: model.predict(rows, num_threads=0)


def _quadratic_features(weights: np.ndarray) -> np.ndarray:
    """Each weight, and the product of every pair of weights (squares included)."""
    pairs = combinations_with_replacement(range(weights.shape[1]), 2)
    return np.column_stack([weights, *(weights[:, i] * weights[:, j] for i, j in pairs)])


def _fit_quadratic_ridge(weights: np.ndarray, y: np.ndarray, seed: int) -> Model:
    """Ridge on standardised quadratic features, its strength chosen by closed-form leave-one-out."""
    features = _quadratic_features(weights)
    centre, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    u, s, vt = np.linalg.svd((features - centre) / scale, full_matrices=False)
    y_mean = y.mean()
    projected = u.T @ (y - y_mean)

    def loo_error(strength: float) -> float:
        shrink = s**2 / (s**2 + strength)
        leverage = (u**2) @ shrink + 1.0 / len(y)
        residual = (y - y_mean) - u @ (shrink * projected)
        return float(np.mean((residual / np.maximum(1.0 - leverage, 1e-12)) ** 2))

    strength = min(RIDGE_STRENGTHS, key=loo_error)
    coef = vt.T @ (s / (s**2 + strength) * projected)
    return lambda rows: y_mean + ((_quadratic_features(rows) - centre) / scale) @ coef
