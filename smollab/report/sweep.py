"""The sweep sections: the comparison of ``smollab ablate``, and RegMix's fit in RegMix mode.

Every number comes from ``smollab.experiments.sweep_report`` (``compare``, ``table_cells``, ``caption``,
``fit_regmix``, ``regmix_plot``), so this report and ``comparison.md`` cannot rank variants differently.
The curves are redrawn here from the comparison's own ``curves`` rather than taken from
``sweep_report.plots``: that grid of one panel per column squeezes to illegible ticks and legends at
this page's width once a sweep has more than a few configurations. Here the target gets a ranked bar
chart, and loss (and the target, when evaluated more than once) one line per configuration, the best
few coloured and the rest grey. The trade-off: the other columns are only in the table.
"""

from __future__ import annotations

import base64

from smollab.experiments.sweep_report import caption, regmix_plot, table_cells
from smollab.report import plots
from smollab.report.collect import Sweep
from smollab.report.document import Code, Figure, Table, Text, num, pct


def state(part: Sweep) -> str:
    if part.comparison is None:
        return "comparison unavailable"
    rows = part.comparison["rows"]
    done = sum(row["status"] == "finished" for row in rows)
    return f"{done} of {len(rows)} configurations finished ({len(part.comparison['variants'])} variants)"


def sweep_blocks(part: Sweep) -> list:
    comparison = part.comparison
    if comparison is None:
        return []
    header, cells = table_cells(comparison)
    blocks = [Table(header, cells, caption(comparison))]
    rows, target = comparison["rows"], comparison["target"]
    entries = [(row["config"], row["target"]["mean"], row["target"]["stderr"],
                "best" if row["best"] else "finished" if row["status"] == "finished" else "unfinished")
               for row in rows if row["target"]]
    direction = "lower" if target["direction"] == "lower" else "higher"
    if png := plots.ranking(entries, f"{target['name']} ({direction} is better; bars: ± standard error)",
                            f"Sweep {comparison['sweep']}: configurations ranked by {target['name']}"):
        blocks.append(Figure("Configurations ranked by the target", png, "at each variant's newest evaluation"))
    if png := plots.ranked_curves({row["config"]: row["curves"]["loss"] for row in rows},
                                  "Training loss vs tokens per configuration (best-ranked first)", "training loss (nats/token)"):
        blocks.append(Figure("Training loss per configuration", png, "band: ± standard error across seeds"))
    curves = {row["config"]: row["curves"]["evals"].get(target["name"], []) for row in rows}
    if max(map(len, curves.values()), default=0) >= 2 and (
            png := plots.ranked_curves(curves, f"{target['name']} vs tokens per configuration", target["name"])):
        blocks.append(Figure("Target per configuration over training", png, "band: ± standard error across seeds"))
    return blocks


def regmix_blocks(part: Sweep) -> list:
    result = part.regmix
    if result is None:
        return []
    if result["status"] != "fitted":
        return [Text(f"RegMix: {result['status']}; rerun `smollab ablate` to train the rest.")]
    fit, predicted, base = result["fit"], result["prediction"], result["base_mixture"]
    return [
        Table(["method", "proxies", "folds", "CV R²", "CV Spearman", "predicted best", "base predicted"],
              [[fit["method"], num(fit["proxies"]), num(fit["folds"]), num(fit["cv_r2"], 3), num(fit["cv_spearman"], 3),
                num(predicted["predicted"]), num(predicted["base_predicted"])]],
              f"target {result['target']['name']} ({result['target']['direction']} is better), "
              f"{result['proxies_finished']} of {result['proxies_planned']} proxies finished"),
        Table(["source", "base share", "predicted best share"],
              [[s, pct(base.get(s, 0.0)), pct(w)] for s, w in predicted["mixture"].items()],
              f"stage {result['stage']} ('{result['stage_name']}'), field {result['field']}"),
        Text("The predicted mixture as a recipe snippet, to paste into the base recipe's stage:"),
        Code(result["snippet"].rstrip()),
        Figure("RegMix in-sample fit", base64.b64decode(regmix_plot(result)),
               "in-sample: trust the cross-validated R² and Spearman above"),
        Table(["proxy", "mixture", "target", "in-sample fit"],
              [[p["name"], ", ".join(f"{s} {pct(w)}" for s, w in p["mixture"].items()), num(p["target"]), num(p["fitted"])]
               for p in result["proxies"]], "the finished proxies the fit used"),
    ]
