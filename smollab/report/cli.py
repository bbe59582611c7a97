"""``smollab report RUN_DIR``: one self-contained report.html (and report.md) of whatever a run directory holds.

A plain function with Typer annotations; ``smollab/cli.py`` registers it. Everything is read from the
run directory and nothing is written but the two files; the work lives in ``build.py``. It prints only
the two paths, one per line on stdout, so a script can open them (``xdg-open $(smollab report RUN | head -1)``);
the cost is no summary in the terminal: the numbers are in report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smollab.report.build import write_report


def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (smollab train, sft, dpo, curate, ablate or demo --out, "
                                                 "or a folder of `smollab eval --out` files), or a folder of several")],
    out: Annotated[Path | None, typer.Option(help="write report.html and report.md here instead of into RUN_DIR")] = None,
) -> None:
    """Report a run from its own files: loss, learning rate, mixture and decisions, evaluations, curation, SFT/DPO
    curves, benchmark scores and sweeps, each section shown when its data exists; works on a run still training.

    Example: smollab report runs/demo --out /tmp/demo-report
    """
    written = write_report(run_dir, out)
    typer.echo(written["html"])
    typer.echo(written["md"])
