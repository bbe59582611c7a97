"""The comparison of a sweep: one row per configuration, curves vs tokens, RegMix's fit, one offline HTML page.

Design choices:

- Nothing is stored twice. Every number is read from ``sweep.json`` (the plan) and each variant's
  own ``log.jsonl`` and ``evals.jsonl``, so ``smollab ablate SWEEP --report`` rebuilds the report at
  any time, also while the sweep trains: an unfinished variant shows its newest evaluation, marked.
- A row's numbers are those of each variant's newest evaluation (its last checkpoint once finished);
  the training loss is the last logged step's. Rows are ranked by the target, unfinished ones too
  (by their newest checkpoint), but only a finished configuration can be marked best. Seed replicas collapse into the mean ± the standard
  error of the mean (sample standard deviation / √n); a configuration with one seed shows the
  evaluation's own item-level standard error where ``evals.jsonl`` carries one (``stderr``), marked
  ``*``; held-out losses have no item-level error.
- ``heldout.mean`` averages the held-out sources that every variant measured, so configurations
  that train on different sources are compared on the same texts; ``tasks.mean`` averages the task
  headlines (``acc_norm`` where a task has it, else its first metric).
- Plots are PNGs drawn on a bare matplotlib ``Figure`` (Agg, no pyplot state), embedded in
  ``report.html`` as base64 with inline CSS and no script: the page opens offline, without smollab.
- RegMix fits the finished proxies once there are enough of them (``regmix.min_proxies``). The fit
  exposes its cross-validated R² and Spearman but not the cross-validated predictions, so the
  scatter shows the *in-sample* fit, labelled so; the CV numbers are the ones to trust.
- Files are replaced atomically (written beside, then renamed): Slurm array tasks that finish
  together each rebuild the report, and a reader never sees half a file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import statistics
from pathlib import Path

from matplotlib.figure import Figure
from rich.table import Table

from smollab.errors import SmollabError
from smollab.experiments.sweep import PLAN_FILE, VARIANT_RECIPE, variant_state
from smollab.recipe import load_recipe

STATUS = {"finished": "finished", "partial": "running/incomplete", "new": "not started"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def read_plan(out: Path) -> dict:
    path = out / PLAN_FILE
    if not path.is_file():
        raise SmollabError(f"{out} has no {PLAN_FILE}; run `smollab ablate SWEEP.yaml` first (it writes the plan)")
    return json.loads(path.read_text())


def summarize(values: list[float], item_stderr: float | None = None) -> dict | None:
    """Mean and standard error: across replicas when there are ≥ 2, else the evaluation's item-level one."""
    if not values:
        return None
    if len(values) >= 2:
        stderr, of = statistics.stdev(values) / math.sqrt(len(values)), "seeds"
    else:
        stderr, of = item_stderr, "items" if item_stderr is not None else None
    return {"mean": statistics.fmean(values), "stderr": stderr, "n": len(values), "stderr_of": of}


def _headline(metrics: dict) -> str:
    from smollab.eval.evaluate import headline

    return headline(metrics)


def _scores(line: dict, sources: list[str], headlines: list[str]) -> dict[str, float]:
    """Every ``task.metric`` and ``heldout.<source>`` of an evals.jsonl line, with the two means."""
    scores = {f"{task}.{m}": v for task, metrics in line["metrics"].items() for m, v in metrics.items()}
    scores |= {f"heldout.{source}": loss for source, loss in line.get("heldout", {}).items()}
    if sources and all(f"heldout.{s}" in scores for s in sources):
        scores["heldout.mean"] = statistics.fmean(scores[f"heldout.{s}"] for s in sources)
    if headlines and all(h in scores for h in headlines):
        scores["tasks.mean"] = statistics.fmean(scores[h] for h in headlines)
    return scores


def _read_variant(entry: dict, out: Path) -> dict:
    run = out / entry["name"]
    recipe = load_recipe(run / VARIANT_RECIPE, [f"out={run}"])
    log, evals = _jsonl(run / "log.jsonl"), _jsonl(run / "evals.jsonl")
    return {**entry, "dir": str(run), "status": variant_state(recipe), "log": log, "evals": evals,
            "tokens": log[-1]["tokens"] if log else 0, "final_loss": log[-1]["loss"] if log else None}


def compare(out: Path) -> dict:
    """The whole comparison, machine-readable (what ``comparison.json`` holds)."""
    plan = read_plan(out)
    target = plan["target"]
    variants = [_read_variant(entry, out) for entry in plan["variants"]]
    latest = [v["evals"][-1] for v in variants if v["evals"]]
    sources = sorted(set.intersection(*(set(line.get("heldout", {})) for line in latest))) if latest else []
    headlines = list(dict.fromkeys(f"{task}.{_headline(metrics)}" for line in latest
                                   for task, metrics in line["metrics"].items()))
    columns = [*headlines, *(["tasks.mean"] if len(headlines) >= 2 else []),
               *(f"heldout.{s}" for s in sources), *(["heldout.mean"] if sources else []), "loss"]
    columns = [target["name"], *(c for c in columns if c != target["name"])]
    for v in variants:
        v["scores"] = _scores(v["evals"][-1], sources, headlines) if v["evals"] else {}
        if v["final_loss"] is not None:
            v["scores"]["loss"] = v["final_loss"]
        newest = v["evals"][-1] if v["evals"] else {}
        v["item_stderr"] = {f"{task}.{m}": se for task, ms in newest.get("stderr", {}).items() for m, se in ms.items()}
        v["target"] = v["scores"].get(target["name"])
        v["curves"] = {"loss": [[r["tokens"], r["loss"]] for r in v.pop("log")],
                       "evals": {key: [[line["tokens"], s[key]] for line in v["evals"]
                                       if key in (s := _scores(line, sources, headlines))]
                                 for key in columns if key != "loss"}}
        v["eval_tokens"] = newest.get("tokens")
        del v["evals"]
    rows = [_row(config, [v for v in variants if v["config"] == config], columns)
            for config in dict.fromkeys(v["config"] for v in variants)]
    lower = target["direction"] == "lower"
    rows.sort(key=lambda r: (r["target"] is None, (1 if lower else -1) * r["target"]["mean"] if r["target"] else 0))
    best = next((row for row in rows if row["status"] == "finished" and row["target"] is not None), None)
    for rank, row in enumerate(rows, 1):
        row["rank"], row["best"] = rank, row is best
    return {"sweep": plan["name"], "mode": plan["mode"], "out": str(out), "target": target, "columns": columns,
            "heldout_sources": sources, "rows": rows, "variants": variants}


def _row(config: str, replicas: list[dict], columns: list[str]) -> dict:
    measured = [r for r in replicas if r["scores"]]
    only = measured[0]["item_stderr"] if len(measured) == 1 else {}
    values = {key: summarize([r["scores"][key] for r in measured if key in r["scores"]], only.get(key)) for key in columns}
    states = {r["status"] for r in replicas}
    status = next(iter(states)) if len(states) == 1 else "partial"
    return {"config": config, "variants": [r["name"] for r in replicas], "seeds": [r["seed"] for r in replicas],
            "status": status, "tokens": min(r["tokens"] for r in replicas),
            "total_tokens": max(r["total_tokens"] for r in replicas), "values": values, "target": values[columns[0]],
            "curves": {"loss": _band([r["curves"]["loss"] for r in replicas]),
                       "evals": {key: _band([r["curves"]["evals"][key] for r in replicas]) for key in columns if key != "loss"}}}


def _band(series: list[list[list[float]]]) -> list[list]:
    """Replica curves → [tokens, mean, stderr or None] at every token count some replica reached."""
    at: dict[float, list[float]] = {}
    for curve in series:
        for tokens, value in curve:
            at.setdefault(tokens, []).append(value)
    return [[tokens, s["mean"], s["stderr"]] for tokens in sorted(at) if (s := summarize(at[tokens]))]


def _cell(summary: dict | None) -> str:
    if summary is None:
        return "–"
    text = f"{summary['mean']:.4f}"
    if summary["stderr"] is not None:
        text += f" ± {summary['stderr']:.4f}{'*' if summary['stderr_of'] == 'items' else ''}"
    return text


def table_cells(comparison: dict) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table, shared by the terminal, markdown and HTML renderings."""
    target = comparison["target"]
    arrow = "↓" if target["direction"] == "lower" else "↑"
    header = ["rank", "configuration", "seeds", "status", "tokens", f"target {target['name']} {arrow}",
              *comparison["columns"][1:]]
    rows = []
    for row in comparison["rows"]:
        seeds = ", ".join(str(s) for s in row["seeds"] if s is not None) or "base"
        rows.append([f"{row['rank']}{' best' if row['best'] else ''}", row["config"], seeds, STATUS[row["status"]],
                     f"{row['tokens']:,} / {row['total_tokens']:,}", *(_cell(row["values"][c]) for c in comparison["columns"])])
    return header, rows


def caption(comparison: dict) -> str:
    target = comparison["target"]
    return (f"target {target['name']}: {target['direction']} is better. ± is the standard error across seeds "
            "(one seed: the evaluation's item-level error, marked *). Numbers are at each variant's newest "
            "evaluation; running/incomplete rows are still training.")


def comparison_table(comparison: dict) -> Table:
    header, rows = table_cells(comparison)
    table = Table(title=f"sweep {comparison['sweep']}: {len(rows)} configurations", caption=caption(comparison))
    for column in header:
        table.add_column(column, justify="left" if column in ("rank", "configuration", "status") else "right")
    for row, cells in zip(comparison["rows"], rows):
        table.add_row(*cells, style="bold green" if row["best"] else ("dim" if row["status"] != "finished" else None))
    return table


def markdown(comparison: dict) -> str:
    header, rows = table_cells(comparison)
    lines = [f"# Sweep {comparison['sweep']}: comparison", "", caption(comparison), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"**{c}**" if row["best"] else c for c in cells) + " |"
              for row, cells in zip(comparison["rows"], rows)]
    return "\n".join(lines) + "\n"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plot(axes, curves: dict[str, list[list]], title: str) -> None:
    for config, points in curves.items():
        if not points:
            continue
        tokens, means, errors = zip(*points)
        (line,) = axes.plot(tokens, means, marker="o" if len(points) <= 50 else None, markersize=3, label=config)
        if any(e is not None for e in errors):
            spread = [e or 0.0 for e in errors]
            axes.fill_between(tokens, [m - e for m, e in zip(means, spread)], [m + e for m, e in zip(means, spread)],
                              color=line.get_color(), alpha=0.2)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("tokens")
    axes.grid(alpha=0.3)


def plots(comparison: dict) -> dict[str, str]:
    """Base64 PNGs: every evaluated series vs tokens (one subplot each) and the training loss vs tokens."""
    rows = comparison["rows"]
    keys = [k for k in comparison["columns"] if k != "loss" and any(r["curves"]["evals"][k] for r in rows)]
    images = {}
    if keys:
        ncols = min(3, len(keys))
        nrows = math.ceil(len(keys) / ncols)
        figure = Figure(figsize=(4.3 * ncols, 3.2 * nrows + 0.6), layout="constrained")
        grid = figure.subplots(nrows, ncols, squeeze=False)
        for axes, key in zip(grid.flat, keys):
            _plot(axes, {r["config"]: r["curves"]["evals"][key] for r in rows}, key)
        for axes in grid.flat[len(keys):]:
            axes.set_axis_off()
        figure.legend(*grid.flat[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(4, len(rows)))
        images["evaluation vs tokens (band: ± standard error across seeds)"] = _png(figure)
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    _plot(axes, {r["config"]: r["curves"]["loss"] for r in rows}, "training loss")
    axes.legend(fontsize=8)
    images["training loss vs tokens"] = _png(figure)
    return images


def fit_regmix(out: Path, comparison: dict) -> tuple[dict, str]:
    """RegMix's fit over the finished proxies and its searched mixture: (regmix.json, regmix.md)."""
    from smollab.experiments import regmix

    info = read_plan(out)["regmix"]
    settings, target = info["settings"], comparison["target"]
    prior = {k: settings[k] for k in ("concentration", "min_share", "absent_share") if settings[k] is not None}
    options = {k: settings[k] for k in ("candidates", "top_k") if settings[k] is not None}
    done = [v for v in comparison["variants"] if v["status"] == "finished" and v["target"] is not None]
    needed = regmix.min_proxies(len(info["sources"]))
    result = {"target": target, "stage": info["stage"], "stage_name": info["stage_name"], "field": info["field"],
              "base_mixture": info["base_mixture"], "proxies_planned": len(comparison["variants"]),
              "proxies_finished": len(done)}
    if len(done) < needed:
        result["status"] = f"waiting: {len(done)} proxies finished, the fit needs {needed}"
        return result, f"# RegMix: {comparison['sweep']}\n\n{result['status']}; rerun `smollab ablate` to train the rest.\n"
    mixtures = [v["values"][info["field"]] for v in done]
    fitted = regmix.fit(mixtures, [v["target"] for v in done], method=settings["method"], seed=settings["seed"])
    prediction = regmix.search(fitted, info["base_mixture"], minimize=target["direction"] == "lower",
                               seed=settings["seed"], **prior, **options)
    in_sample = fitted.predict(mixtures)
    result |= {"status": "fitted", "fit": fitted.quality, "prediction": json.loads(prediction.to_json()),
               "proxies": [{"name": v["name"], "mixture": m, "target": v["target"], "fitted": float(f)}
                           for v, m, f in zip(done, mixtures, in_sample)],
               "snippet": prediction.recipe_snippet()}
    return result, _regmix_markdown(comparison["sweep"], result, info["base"])


def _regmix_markdown(sweep: str, result: dict, base: str) -> str:
    fit, predicted = result["fit"], result["prediction"]
    shares = lambda m: ", ".join(f"{s} {w:.1%}" for s, w in m.items())  # noqa: E731
    lines = [f"# RegMix: {sweep}", "",
             f"{result['proxies_finished']} of {result['proxies_planned']} proxies, target {result['target']['name']} "
             f"({result['target']['direction']} is better), fit {fit['method']}: CV R² {fit['cv_r2']:.3f}, "
             f"Spearman {fit['cv_spearman']:.3f} over {fit['folds']} folds"
             + (" — under 0.5: read it as no usable signal, train more or longer proxies." if fit["cv_spearman"] < 0.5 else "."),
             "", f"Predicted best mixture: {shares(predicted['mixture'])}",
             f"predicted {predicted['predicted']:.4f} (top-{predicted['top_k']} mean {predicted['top_k_mean']:.4f}); "
             f"the base mixture predicts {predicted['base_predicted']:.4f}.", "",
             f"Paste into stage {result['stage']} ('{result['stage_name']}') of {base}:", "", "```yaml",
             result["snippet"].rstrip(), "```", "", "| proxy | mixture | target | in-sample fit |", "|---|---|---|---|"]
    lines += [f"| {p['name']} | {shares(p['mixture'])} | {p['target']:.4f} | {p['fitted']:.4f} |" for p in result["proxies"]]
    return "\n".join(lines) + "\n"


def regmix_plot(result: dict) -> str:
    figure = Figure(figsize=(5, 4.2), layout="constrained")
    axes = figure.subplots()
    actual = [p["target"] for p in result["proxies"]]
    axes.scatter(actual, [p["fitted"] for p in result["proxies"]], s=18)
    low, high = min(actual), max(actual)
    axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.axhline(result["prediction"]["predicted"], color="green", linestyle="--", label="predicted best mixture")
    axes.axhline(result["prediction"]["base_predicted"], color="orange", linestyle=":", label="base mixture")
    fit = result["fit"]
    axes.set_title(f"in-sample fit ({fit['method']}); CV R² {fit['cv_r2']:.2f}, Spearman {fit['cv_spearman']:.2f}", fontsize=9)
    axes.set_xlabel(f"proxy {result['target']['name']} (actual)")
    axes.set_ylabel("fitted")
    axes.legend(fontsize=8)
    return _png(figure)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:nth-child(-n+4),th{text-align:left}"
        "tr.best{background:#e8f5e9;font-weight:bold}tr.incomplete{color:#888;font-style:italic}"
        "img{max-width:100%}pre{background:#f5f5f5;padding:8px}")


def _html_table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr class='{c}'>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in cells) + "</tr>"
                   for cells, c in zip(rows, classes or [""] * len(rows)))
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(comparison: dict, images: dict[str, str], regmix_result: dict | None) -> str:
    header, rows = table_cells(comparison)
    classes = ["best" if r["best"] else "incomplete" if r["status"] != "finished" else "" for r in comparison["rows"]]
    parts = [f"<h1>Sweep {html.escape(comparison['sweep'])}</h1>", f"<p>{html.escape(caption(comparison))}</p>",
             _html_table(header, rows, classes)]
    parts += [f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"
              for title, png in images.items()]
    if regmix_result is not None:
        parts.append("<h2>RegMix</h2>")
        if regmix_result["status"] != "fitted":
            parts.append(f"<p>{html.escape(regmix_result['status'])}</p>")
        else:
            fit, predicted = regmix_result["fit"], regmix_result["prediction"]
            parts.append(_html_table(["method", "proxies", "folds", "CV R²", "CV Spearman", "predicted best", "base predicted"],
                                     [[fit["method"], fit["proxies"], fit["folds"], f"{fit['cv_r2']:.3f}",
                                       f"{fit['cv_spearman']:.3f}", f"{predicted['predicted']:.4f}",
                                       f"{predicted['base_predicted']:.4f}"]]))
            base = regmix_result["base_mixture"]
            parts.append(_html_table(["source", "base share", "predicted best share"],
                                     [[s, f"{base.get(s, 0.0):.1%}", f"{w:.1%}"] for s, w in predicted["mixture"].items()]))
            parts.append(f"<pre>{html.escape(regmix_result['snippet'])}</pre>")
            parts.append(f"<img alt='RegMix fit' src='data:image/png;base64,{regmix_plot(regmix_result)}'>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>sweep {html.escape(comparison['sweep'])}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_report(out: Path) -> tuple[dict, dict | None]:
    """Write comparison.json, comparison.md, report.html (and regmix.json, regmix.md in RegMix mode) into ``out``."""
    comparison = compare(out)
    regmix_result = None
    if comparison["mode"] == "regmix":
        regmix_result, regmix_md = fit_regmix(out, comparison)
        _replace(out / "regmix.json", json.dumps(regmix_result, indent=1) + "\n")
        _replace(out / "regmix.md", regmix_md)
    _replace(out / "comparison.json", json.dumps(comparison, indent=1) + "\n")
    _replace(out / "comparison.md", markdown(comparison))
    _replace(out / "report.html", render_html(comparison, plots(comparison), regmix_result))
    return comparison, regmix_result
