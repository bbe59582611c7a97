"""Fit proposed shares into per-source bounds so that they sum to 1.

The result is ``clip(λ·share, min, max)`` for the one ``λ ≥ 0`` that makes the total 1: sources
inside their bounds keep their ratios to each other (the proportional renormalisation every action
promises), the others sit on a bound. This is the fixed point that "clip, then renormalise the
unclipped" iterates towards, found exactly by walking the breakpoints of the piecewise-linear total
instead of iterating, which can oscillate when a lower and an upper bound bind at once. Sources with
no share get share only where the bounds force it (a minimum, or maxima too small to reach 1
without them), then equally up to their maxima. Feasibility (minima sum ≤ 1 ≤ maxima sum) is
checked when the recipe loads, so here it is a precondition.
"""

from __future__ import annotations

import math

Bounds = dict[str, tuple[float, float]]


def within_bounds(shares: dict[str, float], bounds: Bounds) -> dict[str, float]:
    """``shares`` (any non-negative weights) as a mixture summing to 1 inside ``bounds``.

    Every bounded source appears in the result; unbounded ones may take any share in [0, 1]. A mixture
    that already sums to 1 inside its bounds comes back unchanged, bit for bit."""
    names = list(dict.fromkeys([*shares, *bounds]))
    low = {n: bounds[n][0] if n in bounds else 0.0 for n in names}
    high = {n: bounds[n][1] if n in bounds else 1.0 for n in names}
    weight = {n: max(shares.get(n, 0.0), 0.0) for n in names}
    if abs(math.fsum(weight.values()) - 1.0) <= 1e-12 and all(low[n] <= weight[n] <= high[n] for n in names):
        return weight
    positive = [n for n in names if weight[n] > 0]
    empty = [n for n in names if weight[n] == 0]
    if math.fsum(high[n] for n in positive) + math.fsum(low[n] for n in empty) >= 1.0:
        fitted = _scale_and_clip({n: weight[n] for n in positive}, low, high, 1.0 - math.fsum(low[n] for n in empty))
        fitted.update({n: low[n] for n in empty})
    else:  # the sources with share are all at their maxima; the bounds force share onto empty ones
        fitted = {n: high[n] for n in positive}
        fitted.update(_scale_and_clip({n: 1.0 for n in empty}, low, high, 1.0 - math.fsum(fitted.values())))
    return _settle({n: fitted[n] for n in names}, low, high)


def _scale_and_clip(weight: dict[str, float], low: dict, high: dict, target: float) -> dict[str, float]:
    """``clip(λ·weight, low, high)`` summing to ``target``, for ``sum(low) ≤ target ≤ sum(high)``."""
    def total(lam: float) -> float:
        return math.fsum(min(max(lam * w, low[n]), high[n]) for n, w in weight.items())

    breaks = sorted({0.0, *(low[n] / w for n, w in weight.items()), *(high[n] / w for n, w in weight.items())})
    previous = 0.0
    for lam in breaks:
        reached = total(lam)
        if reached >= target:
            break
        previous = lam
    if reached == target or lam == previous:
        chosen = lam
    else:
        # On (previous, lam) the clipped sources are constant and the free ones grow linearly.
        free = [n for n, w in weight.items() if low[n] / w <= previous and lam <= high[n] / w]
        middle = (previous + lam) / 2
        pinned = math.fsum(min(max(middle * w, low[n]), high[n]) for n, w in weight.items() if n not in free)
        chosen = (target - pinned) / math.fsum(weight[n] for n in free)
    return {n: min(max(chosen * w, low[n]), high[n]) for n, w in weight.items()}


def _settle(shares: dict[str, float], low: dict, high: dict) -> dict[str, float]:
    """Give the last rounding error to the largest share that stays inside its bounds with it."""
    residual = 1.0 - math.fsum(shares.values())
    for name in sorted(shares, key=lambda n: -shares[n]):
        if low[name] <= shares[name] + residual <= high[name]:
            shares[name] += residual
            break
    return shares
