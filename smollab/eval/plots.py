"""Figures of evaluation results: the passkey heat map (accuracy per prompt length and needle depth).

The heat map reads the same ``acc@{length}@{depth}`` metrics that ``--out`` results and in-loop
``evals.jsonl`` lines hold, so it can be drawn from either. It is drawn on a bare ``Figure`` with
the Agg canvas rather than through pyplot, so it needs no display and leaves matplotlib's global
backend alone in a process that also trains or evaluates.
"""

import math
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from smollab.errors import SmollabError

CELL_METRIC = re.compile(r"acc@(\d+)@(\d+)")


def passkey_grid(metrics: dict[str, float]) -> tuple[list[int], list[int], list[list[float]]]:
    """(lengths, depths, accuracy[depth index][length index]) of ``acc@{length}@{depth}`` metrics; nan marks
    a cell the metrics lack (e.g. a ``limit`` too small to reach it)."""
    cells = {(int(m[1]), int(m[2])): value for name, value in metrics.items() if (m := CELL_METRIC.fullmatch(name))}
    if not cells:
        raise SmollabError("passkey heat map: the metrics hold no acc@{length}@{depth} entry; pass the passkey "
                           "task's metrics.")
    lengths = sorted({length for length, _ in cells})
    depths = sorted({depth for _, depth in cells})
    return lengths, depths, [[cells.get((length, depth), math.nan) for length in lengths] for depth in depths]


def passkey_heatmap(metrics: dict[str, float], path: Path, title: str) -> Path:
    """Write a PNG heat map of passkey accuracy: lengths on x, depths on y, each cell annotated in percent."""
    lengths, depths, grid = passkey_grid(metrics)
    figure = Figure(figsize=(2.5 + 1.0 * len(lengths), 1.5 + 0.55 * len(depths)), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(lengths)), [str(length) for length in lengths])
    axes.set_yticks(range(len(depths)), [f"{depth}%" for depth in depths])
    axes.set_xlabel("prompt length (tokens)")
    axes.set_ylabel("needle depth")
    axes.set_title(title)
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if not math.isnan(value):
                axes.text(x, y, f"{100 * value:.0f}", ha="center", va="center")
    figure.colorbar(image, ax=axes, label="accuracy")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
