"""``smollab ablate SWEEP.yaml``: plan, train and compare the variants of an ablation sweep (or RegMix proxies).

A plain function with Typer annotations; ``smollab/cli.py`` registers it. The plan is validated in
full before anything trains; the work lives in ``sweep.py`` (variants, runners, resume) and
``sweep_report.py`` (the comparison), and this file only parses, dispatches and prints.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from smollab.console import table_console
from smollab.data.mixture import plan_stages
from smollab.errors import SmollabError
from smollab.experiments.sweep import LAUNCHERS, SweepPlan, load_sweep, plan_sweep, run_sweep, sweep_out, variant_state, \
    write_plan, write_sbatch
from smollab.experiments.sweep_report import comparison_table, write_report


def ablate(
    sweep: Annotated[Path, typer.Argument(help="sweep YAML (see recipes/sweeps/ and docs/experiments.md)")],
    launcher: Annotated[str, typer.Option(help="local (one after another, in this process), processes "
                                               "(`smollab train` subprocesses) or slurm (write a job array)")] = "local",
    parallel: Annotated[int | None, typer.Option(min=1, help="processes: variants at once (default 1); "
                                                             "slurm: the array's %N throttle (default none)")] = None,
    only: Annotated[str | None, typer.Option(help="train one variant, by name or index (what each Slurm array task runs)")] = None,
    submit: Annotated[bool, typer.Option(help="slurm: run sbatch on the written script")] = False,
    dry_run: Annotated[bool, typer.Option(help="validate every variant and print the plan; write and train nothing")] = False,
    report: Annotated[bool, typer.Option(help="only rebuild the comparison from the variants' run directories")] = False,
    regmix: Annotated[int | None, typer.Option("--regmix", metavar="K", min=1,
                                               help="RegMix mode: K proxies whose stage mixture is sampled around the "
                                                    "base's, then a regression picks the mixture")] = None,
    out: Annotated[str | None, typer.Option(help="sweep directory (default: the sweep's out, or runs/sweeps/<name>)")] = None,
) -> None:
    """Train every variant of SWEEP (cartesian product of its axes; seeds collapse into mean ± stderr), skipping
    finished ones and resuming interrupted ones, then write <out>/comparison.{json,md} and <out>/report.html.

    Example: smollab ablate recipes/sweeps/demo-mixture.yaml --launcher processes --parallel 2
    """
    console = table_console(stderr=True)
    if launcher not in LAUNCHERS:
        raise SmollabError(f"--launcher {launcher}: use one of {', '.join(LAUNCHERS)}")
    if submit and launcher != "slurm":
        raise SmollabError("--submit submits the Slurm job array; add --launcher slurm")
    if parallel and launcher == "local":
        raise SmollabError("--parallel N runs N variants at once with --launcher processes (or throttles a Slurm array); "
                           "the local launcher runs them one after another")
    if only is not None and launcher == "slurm":
        raise SmollabError("--only picks the variant one Slurm array task trains; the array covers every variant, drop --only")
    if report:
        _write_and_show_report(sweep_out(load_sweep(sweep, out)), console)
        return
    plan = plan_sweep(sweep, out, regmix, warn=lambda line: console.print(f"[yellow]{line}[/]", soft_wrap=True, highlight=False))
    selected = plan.select(only)
    if dry_run:
        table_console().print(variant_table(plan, selected))
        return
    write_plan(plan)
    if launcher == "slurm":
        script = write_sbatch(plan, parallel, regmix)
        console.print(f"wrote {script} ({len(plan.variants)} array tasks); submit it with: sbatch {script}", soft_wrap=True)
        if submit:
            _submit(script, console)
        return
    events = run_sweep(plan, selected, launcher, parallel or 1, console)
    _write_and_show_report(plan.out, console)
    if failed := [name for name, event in events.items() if event == "failed"]:
        raise SmollabError(f"{len(failed)} of {len(events)} variants failed ({', '.join(failed)}); their errors are in "
                           f"{plan.out / 'sweep.jsonl'}; fix them and rerun the same command to continue")


def _write_and_show_report(out: Path, console: Console) -> None:
    comparison, regmix_result = write_report(out)
    table_console().print(comparison_table(comparison))
    if regmix_result is not None:
        if regmix_result["status"] == "fitted":
            fit, predicted = regmix_result["fit"], regmix_result["prediction"]
            shares = ", ".join(f"{s} {w:.1%}" for s, w in predicted["mixture"].items())
            console.print(f"regmix: best predicted mixture {shares} ({predicted['predicted']:.4f} vs the base's "
                          f"{predicted['base_predicted']:.4f}; CV R² {fit['cv_r2']:.2f}, Spearman {fit['cv_spearman']:.2f})",
                          soft_wrap=True, highlight=False)
        else:
            console.print(f"regmix: {regmix_result['status']}", soft_wrap=True, highlight=False)
    names = ["report.html", "comparison.md", "comparison.json", *(["regmix.md", "regmix.json"] if regmix_result else [])]
    console.print(f"report: {', '.join(str(out / name) for name in names)}", soft_wrap=True, highlight=False)


def variant_table(plan: SweepPlan, selected: list) -> Table:
    fields = list(dict.fromkeys(field for v in plan.variants for field in v.values))
    table = Table(title=f"sweep {plan.name}: {len(selected)} of {len(plan.variants)} variants in {plan.out} "
                        f"(target {plan.target.name}, {plan.target.direction} is better)")
    for column in ("#", "variant", "configuration", *fields, "stages: tokens", "steps", "state"):
        table.add_column(column, justify="right" if column in ("#", "steps") else "left")
    for v in selected:
        stages = plan_stages(v.recipe)
        per_step = v.recipe.batch.tokens_per_step
        tokens = "\n".join(f"{s.name}: {(s.end_step - s.start_step) * per_step:,}" for s in stages)
        table.add_row(str(v.index), v.name, v.config, *(_value(v.values.get(f)) for f in fields), tokens,
                      f"{stages[-1].end_step:,}", variant_state(v.recipe))
    return table


def _value(value) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k} {v:.1%}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    return "" if value is None else str(value)


def _submit(script: Path, console: Console) -> None:
    if shutil.which("sbatch") is None:
        raise SmollabError(f"--submit: sbatch is not on PATH; run `sbatch {script}` on a Slurm login node")
    result = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise SmollabError(f"sbatch {script} failed: {said[-1] if said else f'exit {result.returncode}'}")
    console.print(result.stdout.strip(), soft_wrap=True, highlight=False)
