"""One function per figure of the report, each returning PNG bytes, or None when it has nothing to draw.

Figures are drawn on bare matplotlib ``Figure`` objects (the Agg canvas, no pyplot state), so building a
report needs no display and leaves the global backend alone. Every figure is 9 inches at 100 dpi (900
pixels, the page's content width) with 10-point text, labelled axes with units, a title, and a legend
whenever it has more than one series; functions take plain lists and dicts, not run objects, so each
can be drawn from any part. The trade-off: a function that finds no finite point returns None and the
section simply has no figure, rather than showing an empty frame that looks like a bug.
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter, PercentFormatter
from matplotlib.transforms import blended_transform_factory

WIDTH, DPI = 9.0, 100
Point = tuple[float, float]
Span = tuple[str, float, float]  # name, first token, last token

DECISION_STYLE = {  # kind → (colour, line style, legend label)
    "rules": ("#d62728", "-", "rules decision (shares changed)"),
    "rules-silent": ("#7f7f7f", ":", "rules evaluated, none fired"),
    "odm": ("#1f3b8a", "--", "ODM update"),
    "spike_guard": ("#ff7f0e", "-.", "loss spike undone"),
}


def palette(names: list[str]) -> dict[str, str]:
    """A fixed colour per source (or configuration), the same in every figure of the report."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _finite(points) -> list:
    return [p for p in points if all(isinstance(v, (int, float)) and math.isfinite(v) for v in p[:2])]


def _figure(height: float, nrows: int = 1, ncols: int = 1, width: float = WIDTH, **kwargs):
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.subplots(nrows, ncols, squeeze=False, **kwargs)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _tokens_axis(axes, label: str = "tokens trained (cumulative)") -> None:
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.set_xlabel(label)
    axes.grid(alpha=0.3)


def _legend(axes, outside: bool = True) -> None:
    handles, labels = axes.get_legend_handles_labels()
    if len(handles) > 1:
        if outside:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        else:
            axes.legend(fontsize=9)


def _stage_bands(axes, stages: list[Span], until: float | None = None) -> None:
    """Alternating shaded spans, one per stage, its name just above the axes (never over the data); clipped to
    ``until`` tokens when given. Callers give the title ``pad=18`` to leave the names room."""
    transform = blended_transform_factory(axes.transData, axes.transAxes)
    for i, (name, start, end) in enumerate(stages):
        if until is not None:
            if start >= until:
                break
            end = min(end, until)
        axes.axvspan(start, end, color="#4c72b0" if i % 2 else "#dd8452", alpha=0.08, linewidth=0)
        axes.text((start + end) / 2, 1.01, name, transform=transform, ha="center", va="bottom", fontsize=9, color="#333333")


def _mark_width(marks: int) -> float:
    """Line width of vertical marks: bold for a few decisions, hairlines for hundreds of ODM rounds."""
    return 2.0 if marks <= 20 else 1.0 if marks <= 80 else 0.4


def _boundaries(axes, boundaries: list[float]) -> None:
    for i, tokens in enumerate(boundaries):
        axes.axvline(tokens, color="#555555", linestyle="--", linewidth=_mark_width(len(boundaries)) / 2,
                     label="mixture segment boundary" if i == 0 else None)


def training_loss(overall: list[Point], per_source: dict[str, list[Point]], colors: dict[str, str],
                  stages: list[Span], boundaries: list[float]) -> bytes | None:
    overall = _finite(overall)
    if not overall:
        return None
    figure, grid = _figure(4.6)
    axes = grid[0, 0]
    _stage_bands(axes, stages, until=overall[-1][0])
    for source, points in per_source.items():
        if points := _finite(points):
            axes.plot(*zip(*points), color=colors.get(source), linewidth=1, alpha=0.75, label=source)
    axes.plot(*zip(*overall), color="black", linewidth=2, label="overall")
    _boundaries(axes, [b for b in boundaries if b <= overall[-1][0]])
    _tokens_axis(axes)
    axes.set_ylabel("training loss (nats/token)")
    axes.set_title("Training loss vs tokens, overall and per source (shaded: stages)", pad=18)
    _legend(axes)
    return _png(figure)


def learning_rate(points: list[Point], stages: list[Span]) -> bytes | None:
    points = _finite(points)
    if not points:
        return None
    figure, grid = _figure(3.4)
    axes = grid[0, 0]
    _stage_bands(axes, stages, until=points[-1][0])
    axes.plot(*zip(*points), color="#1f77b4", linewidth=1.8)
    _tokens_axis(axes)
    axes.set_ylabel("learning rate")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_title("Learning rate vs tokens (shaded: stages)", pad=18)
    return _png(figure)


def mixture_shares(segments: list[tuple[float, float, dict[str, float]]], colors: dict[str, str], stages: list[Span],
                   decisions: list[tuple[float, str]], trained: float | None) -> bytes | None:
    """Stacked token shares per source over the schedule's segments; ``decisions`` are (tokens, kind) marks."""
    if not segments:
        return None
    sources = list(colors)
    xs, ys = [], {s: [] for s in sources}
    for start, end, shares in segments:
        xs += [start, end]
        for source in sources:
            ys[source] += [shares.get(source, 0.0)] * 2
    figure, grid = _figure(4.6)
    axes = grid[0, 0]
    axes.stackplot(xs, [ys[s] for s in sources], labels=sources, colors=[colors[s] for s in sources], alpha=0.85)
    transform = blended_transform_factory(axes.transData, axes.transAxes)
    for name, start, end in stages:
        axes.axvline(start, color="black", linewidth=1.5)
        axes.text((start + end) / 2, 1.01, name, transform=transform, ha="center", va="bottom", fontsize=9)
    seen, width = set(), _mark_width(len(decisions))
    for tokens, kind in decisions:
        colour, style, label = DECISION_STYLE[kind]
        axes.axvline(tokens, color=colour, linestyle=style, linewidth=width, label=None if kind in seen else label)
        axes.plot([tokens], [1.0], marker="v", color=colour, markersize=4 * width, clip_on=False)
        seen.add(kind)
    if trained is not None and trained < xs[-1]:
        axes.axvline(trained, color="black", linestyle=(0, (1, 1)), linewidth=1.5, label="trained so far")
    axes.set_xlim(xs[0], xs[-1])
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    _tokens_axis(axes, "tokens into training")
    axes.set_ylabel("token share of each step")
    axes.set_title("Mixture per source vs tokens (the realised schedule) with its decisions", pad=18)
    _legend(axes)
    return _png(figure)


def curves_vs(series: dict[str, list[Point]], colors: dict[str, str], title: str, ylabel: str,
              stages: list[Span] | None = None, xlabel: str | None = None) -> bytes | None:
    """Lines with markers, one per series (held-out loss per source, per checkpoint); x is tokens unless ``xlabel``."""
    series = {name: _finite(points) for name, points in series.items()}
    series = {name: points for name, points in series.items() if points}
    if not series:
        return None
    figure, grid = _figure(4.0)
    axes = grid[0, 0]
    if stages:
        _stage_bands(axes, stages, until=max(p[-1][0] for p in series.values()))
    for name, points in series.items():
        axes.plot(*zip(*points), marker="o", markersize=4, linewidth=1.5, color=colors.get(name), label=name)
    if xlabel is None:
        _tokens_axis(axes)
    else:
        axes.set_xlabel(xlabel)
        axes.grid(alpha=0.3)
    axes.set_ylabel(ylabel)
    axes.set_title(title, pad=18 if stages else 6)
    _legend(axes)
    return _png(figure)


def task_panels(panels: dict[str, list[tuple[float, float, float | None]]], xlabel: str, tokens: bool = True) -> bytes | None:
    """One small panel per task (its headline metric vs checkpoint), error bars at ± one standard error."""
    panels = {name: [p for p in points if p[1] is not None and math.isfinite(p[1])] for name, points in panels.items()}
    panels = {name: points for name, points in panels.items() if points}
    if not panels:
        return None
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    figure, grid = _figure(2.7 * nrows + 0.5, nrows, ncols)
    for axes, (name, points) in zip(grid.flat, panels.items()):
        xs, ys, errors = zip(*points)
        axes.errorbar(xs, ys, yerr=[e or 0.0 for e in errors], marker="o", markersize=4, capsize=3, linewidth=1.5)
        axes.set_title(name, fontsize=10)
        if all(0.0 <= y <= 1.0 for y in ys):  # an accuracy-like fraction: show its whole range (MT-Bench rates 1-10)
            axes.set_ylim(-0.03, 1.03)
            axes.set_ylabel("score (fraction)")
        else:
            axes.set_ylabel("score")
        if tokens:
            _tokens_axis(axes, xlabel)
        else:
            axes.set_xlabel(xlabel)
            axes.grid(alpha=0.3)
    for axes in grid.flat[len(panels):]:
        axes.set_axis_off()
    figure.suptitle("Benchmark scores per checkpoint (error bars: ± one standard error over items)")
    return _png(figure)


def passkey(metrics: dict[str, float], title: str) -> bytes | None:
    """The passkey heat map of ``smollab.eval.plots`` (length × depth), as PNG bytes."""
    from smollab.eval.plots import CELL_METRIC, passkey_heatmap

    if not any(CELL_METRIC.fullmatch(name) for name in metrics):
        return None
    with tempfile.TemporaryDirectory() as folder:
        return passkey_heatmap(metrics, Path(folder) / "passkey.png", title).read_bytes()


def funnel(rows: list[tuple[str, float, float, float, float]]) -> bytes | None:
    """Documents and tokens going into and kept by each curation step, side by side."""
    if not rows:
        return None
    figure, grid = _figure(0.45 * len(rows) + 1.6, 1, 2, sharey=True)
    names = [r[0] for r in rows][::-1]
    for axes, (into, kept, what) in zip(grid[0], ((1, 2, "documents"), (3, 4, "tokens"))):
        axes.barh(names, [r[into] for r in rows][::-1], color="#c7c7c7", label="in")
        axes.barh(names, [r[kept] for r in rows][::-1], color="#2ca02c", height=0.5, label="kept")
        axes.xaxis.set_major_formatter(EngFormatter(sep=""))
        axes.set_xlabel(f"{what} (count)")
        axes.set_title(f"{what.capitalize()} in and kept per step")
        axes.grid(alpha=0.3, axis="x")
    grid[0, 0].set_ylabel("curation step (in order)")
    _legend(grid[0, 1], outside=False)
    return _png(figure)


def drop_reasons(counts: list[tuple[str, float]]) -> bytes | None:
    counts = [(name, n) for name, n in counts if n]
    if not counts:
        return None
    figure, grid = _figure(0.35 * len(counts) + 1.4)
    axes = grid[0, 0]
    axes.barh([c[0] for c in counts][::-1], [c[1] for c in counts][::-1], color="#d62728")
    axes.set_xlabel("documents dropped (count)")
    axes.set_ylabel("step: reason")
    axes.set_title("Why documents were dropped")
    axes.grid(alpha=0.3, axis="x")
    return _png(figure)


def confusion(matrix: list[list[int]], title: str) -> bytes | None:
    if not matrix or not any(any(row) for row in matrix):
        return None
    figure, grid = _figure(4.2, width=5.6)
    axes = grid[0, 0]
    image = axes.imshow(matrix, cmap="Blues", aspect="equal")
    size = len(matrix)
    axes.set_xticks(range(size))
    axes.set_yticks(range(size))
    peak = max(max(row) for row in matrix)
    for y, row in enumerate(matrix):
        for x, value in enumerate(row):
            axes.text(x, y, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    axes.set_xlabel("predicted int_score")
    axes.set_ylabel("annotated int_score")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="documents (count)")
    return _png(figure)


def post_panels(panels: list[tuple[str, str, dict[str, list[Point]]]]) -> bytes | None:
    """Side-by-side panels of (title, y label, {series: points vs step}): SFT/DPO train and held-out curves."""
    panels = [(t, y, {n: _finite(p) for n, p in s.items()}) for t, y, s in panels]
    panels = [(t, y, {n: p for n, p in s.items() if p}) for t, y, s in panels]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        return None
    figure, grid = _figure(3.8, 1, len(panels))
    styles = {"train": {"linewidth": 1.2, "alpha": 0.8, "color": "#1f77b4"},
              "held-out": {"linewidth": 2, "marker": "o", "markersize": 5, "color": "#d62728"}}
    for axes, (title, ylabel, series) in zip(grid[0], panels):
        for name, points in series.items():
            axes.plot(*zip(*points), label=name, **styles.get(name, {}))
        axes.set_title(title)
        axes.set_xlabel("optimizer step")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        _legend(axes, outside=False)
    return _png(figure)


def score_bars(files: list[str], rows: list[tuple[str, list[tuple[float, float | None] | None]]]) -> bytes | None:
    """Horizontal grouped bars: one group per task metric, one bar per result file, ± one standard error."""
    rows = [(name, values) for name, values in rows if any(v is not None for v in values)]
    if not rows:
        return None
    colors = palette(files)
    height = 0.8 / len(files)
    figure, grid = _figure(max(2.4, 0.32 * len(rows) * len(files) + 1.6))
    axes = grid[0, 0]
    for k, file in enumerate(files):
        ys = [len(rows) - 1 - i + 0.4 - height * (k + 0.5) for i in range(len(rows))]
        values = [v[k][0] if v[k] is not None else 0.0 for _, v in rows]
        errors = [(v[k][1] or 0.0) if v[k] is not None else 0.0 for _, v in rows]
        axes.barh(ys, values, height=height * 0.9, xerr=errors, capsize=2, color=colors[file], label=file)
        for y, value, error, measured in zip(ys, values, errors, (v[k] is not None for _, v in rows)):
            if measured:  # the value itself, so a bar of zero still reads as a score
                axes.annotate(f"{value:.2f}", (value + error, y), xytext=(4, 0), textcoords="offset points",
                              va="center", fontsize=8)
    axes.set_yticks([len(rows) - 1 - i for i in range(len(rows))], [name for name, _ in rows])
    axes.set_xlabel("score (task metric; bars: ± one standard error)")
    axes.set_ylabel("task: metric")
    axes.set_title("Benchmark scores per result file")
    axes.grid(alpha=0.3, axis="x")
    _legend(axes)
    return _png(figure)


def ranking(entries: list[tuple[str, float, float | None, str]], xlabel: str, title: str) -> bytes | None:
    """A dot per configuration, best at the top, ± standard error: (name, value, stderr, kind) with kind 'best',
    'finished' or 'unfinished'. Dots, not bars: the values sit far from zero, and a bar would imply a baseline."""
    entries = [e for e in entries if e[1] is not None and math.isfinite(e[1])]
    if not entries:
        return None
    colours = {"best": "#2ca02c", "finished": "#4c72b0", "unfinished": "#c7c7c7"}
    figure, grid = _figure(0.28 * len(entries) + 1.5)
    axes = grid[0, 0]
    ys = list(range(len(entries)))[::-1]
    for kind, label in (("best", "best finished"), ("finished", "finished"), ("unfinished", "still training")):
        chosen = [(y, e) for y, e in zip(ys, entries) if e[3] == kind]
        if chosen:
            axes.errorbar([e[1] for _, e in chosen], [y for y, _ in chosen], xerr=[e[2] or 0.0 for _, e in chosen],
                          fmt="o", markersize=7, capsize=3, color=colours[kind], label=label)
    axes.set_yticks(ys, [e[0] for e in entries])
    low = min(e[1] - (e[2] or 0.0) for e in entries)
    high = max(e[1] + (e[2] or 0.0) for e in entries)
    margin = (high - low) * 0.1 or abs(high) * 0.01 or 1.0
    axes.set_xlim(low - margin, high + margin)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("configuration (ranked)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    _legend(axes)
    return _png(figure)


def ranked_curves(curves: dict[str, list[tuple[float, float, float | None]]], title: str, ylabel: str,
                  highlight: int = 8) -> bytes | None:
    """One line per configuration (± standard-error band), given best first; beyond ``highlight`` lines the rest
    are drawn thin and grey under one legend entry, so a 60-proxy sweep stays readable."""
    curves = {name: [p for p in points if p[1] is not None and math.isfinite(p[1])] for name, points in curves.items()}
    curves = {name: points for name, points in curves.items() if points}
    if not curves:
        return None
    names = list(curves)
    shown = names if len(names) <= highlight + 2 else names[:highlight]
    colors = palette(shown)
    figure, grid = _figure(4.4)
    axes = grid[0, 0]
    for k, name in enumerate(reversed(names)):
        tokens, means, errors = zip(*curves[name])
        marker = "o" if len(tokens) <= 30 else None
        if name in colors:
            axes.plot(tokens, means, color=colors[name], linewidth=1.8, marker=marker, markersize=4, label=name, zorder=3)
            if any(e is not None for e in errors):
                spread = [e or 0.0 for e in errors]
                axes.fill_between(tokens, [m - e for m, e in zip(means, spread)], [m + e for m, e in zip(means, spread)],
                                  color=colors[name], alpha=0.2)
        else:
            axes.plot(tokens, means, color="#b0b0b0", linewidth=0.8, marker=marker, markersize=2, zorder=2,
                      label=f"the other {len(names) - len(shown)}" if k == 0 else None)
    _tokens_axis(axes)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    handles, labels = axes.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: names.index(labels[i]) if labels[i] in names else len(names))
    if len(handles) > 1:
        axes.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    fontsize=9, frameon=False)
    return _png(figure)
