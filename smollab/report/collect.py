"""Find the parts of a run directory and read each into plain data, tolerating a run that is still writing.

A part is recognised by the files it holds, never by its directory's name: ``recipe.resolved.yaml`` with
``stages`` is a pretraining run, one whose ``train`` has a ``beta`` is DPO, any other is SFT;
``curation_report.json`` (or ``classifier/config.json``) is a curation run; ``sweep.json`` is an
ablation sweep; a ``*.json`` shaped like ``smollab eval --out`` results is an evaluation; ``demo.json``
lists the whole-loop demo's steps. RUN_DIR is searched first; when it is no run itself (only eval files
or ``demo.json`` at most), its immediate subdirectories are searched too, one level, so a sweep's
variants or a run's ``checkpoints/`` are never reported as parts of their own.

Every JSONL file goes through one line reader that keeps what parses and counts what does not (a run
killed mid-write leaves a half line); the counts travel with the part and the overview shows them, so
nothing is dropped silently. Problems that make a piece unavailable (a recipe that no longer validates,
a mixture schedule whose shards are gone) become notes on the part, not errors: the trade-off is that
a damaged run renders with less in it, said in one line, instead of not rendering at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from smollab.data.mixture import MixtureSampler, StagePlan, plan_stages
from smollab.data.mixture_report import RESOLVED_RECIPE, load_run, newest_checkpoint_meta
from smollab.errors import SmollabError
from smollab.experiments.sweep import PLAN_FILE
from smollab.recipe import Recipe, load_recipe

CURATION_REPORT = "curation_report.json"
DATA_REPORT = "data_report.json"
DEMO_STEPS = "demo.json"
RUN_KINDS = ("pretrain", "sft", "dpo", "curation", "sweep")
ORDER = ("steps", "curation", "pretrain", "sft", "dpo", "evals", "sweep")  # the loop's order, for listing parts


@dataclass
class Lines:
    """The records of one JSONL file: the lines that parsed to objects, and the numbers of those that did not."""

    path: Path
    records: list[dict] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)  # 1-based line numbers
    total: int = 0  # number of the last non-empty line

    def note(self, root: Path) -> str | None:
        if not self.unreadable:
            return None
        where = ", ".join(map(str, self.unreadable[:5])) + (" …" if len(self.unreadable) > 5 else "")
        last = self.unreadable[-1] == self.total and len(self.unreadable) == 1
        why = " (the last one: a run still writing, or killed mid-write, leaves it half-written)" if last else ""
        return f"{_relative(self.path, root)}: {len(self.unreadable)} unreadable line(s) skipped, line {where}{why}"


def read_jsonl(path: Path) -> Lines:
    """Every line of ``path`` that is a JSON object; a missing file is empty, a bad line is counted, never raised."""
    lines = Lines(path)
    if not path.is_file():
        return lines
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(text, 1):
        if not line.strip():
            continue
        lines.total = number
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            lines.records.append(record)
        else:
            lines.unreadable.append(number)
    return lines


def by_step(lines: Lines, *required: str) -> list[dict]:
    """The records holding every ``required`` key, one per step (the last written wins), in step order."""
    kept = {r["step"]: r for r in lines.records if isinstance(r.get("step"), int) and all(k in r for k in required)}
    return [kept[s] for s in sorted(kept)]


@dataclass
class Part:
    kind: str
    dir: Path
    notes: list[str] = field(default_factory=list)

    def label(self, root: Path) -> str:
        return _relative(self.dir, root)

    @property
    def line_files(self) -> list[Lines]:
        return []


@dataclass(kw_only=True)
class Pretrain(Part):
    log: Lines
    evals: Lines
    decisions: Lines
    recipe: Recipe | None = None
    stages: list[StagePlan] = field(default_factory=list)
    sampler: MixtureSampler | None = None  # the realised schedule, as `smollab mixture` reads it
    sampler_step: int = 0
    sampler_origin: str = ""
    newest_meta: dict | None = None
    profile: dict[str, dict] = field(default_factory=dict)  # rank file name → summary

    @property
    def line_files(self) -> list[Lines]:
        return [self.log, self.evals, self.decisions]


@dataclass(kw_only=True)
class Post(Part):
    tree: dict
    log: Lines
    evals: Lines
    data_report: dict | None = None

    @property
    def line_files(self) -> list[Lines]:
        return [self.log, self.evals]


@dataclass(kw_only=True)
class Curation(Part):
    report: dict | None = None
    classifier: dict | None = None


@dataclass
class EvalFile:
    path: Path
    model: str
    tasks: dict[str, dict[str, tuple[float, float | None]]]  # task → metric → (value, stderr)
    items: dict[str, int]


@dataclass(kw_only=True)
class Evals(Part):
    files: list[EvalFile]


@dataclass(kw_only=True)
class Sweep(Part):
    comparison: dict | None = None
    regmix: dict | None = None


@dataclass(kw_only=True)
class Steps(Part):
    steps: list[dict]


@dataclass
class Found:
    root: Path
    parts: list[Part]
    notes: list[str]  # about files that belong to no part (a .json that does not parse)

    def of(self, *kinds: str) -> list:
        return [p for p in self.parts if p.kind in kinds]


def discover(run_dir: Path) -> Found:
    """Every part in ``run_dir`` (and, when it is no run itself, in its immediate subdirectories)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SmollabError(f"{run_dir} is not a directory; pass the --out directory of smollab train, sft, dpo, "
                           "curate, ablate or demo (or a folder of `smollab eval --out` JSON files)")
    notes: list[str] = []
    parts = parts_in(run_dir, run_dir, notes)
    if not any(p.kind in RUN_KINDS for p in parts):
        for sub in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            parts += parts_in(sub, run_dir, notes)
    if not parts:
        raise SmollabError(f"{run_dir} has none of the known parts (recipe.resolved.yaml, {CURATION_REPORT}, {PLAN_FILE}, "
                           f"`smollab eval --out` JSON files, {DEMO_STEPS}), nor do its subdirectories; pass the --out "
                           "directory of smollab train, sft, dpo, curate, eval, ablate or demo")
    return Found(run_dir, sorted(parts, key=lambda p: ORDER.index(p.kind)), notes)


def parts_in(directory: Path, root: Path, notes: list[str]) -> list[Part]:
    parts: list[Part] = []
    if (directory / PLAN_FILE).is_file():
        parts.append(read_sweep(directory))
    elif (directory / RESOLVED_RECIPE).is_file() and (run := read_run(directory, root, notes)) is not None:
        parts.append(run)
    if (directory / CURATION_REPORT).is_file() or (directory / "classifier" / "config.json").is_file():
        parts.append(read_curation(directory))
    files = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            notes.append(f"{_relative(path, root)}: not readable JSON ({type(err).__name__}), skipped")
            continue
        if path.name == DEMO_STEPS and (steps := _demo_steps(data)) is not None:
            parts.append(Steps("steps", directory, steps=steps))
        elif (result := eval_file(path, data)) is not None:
            files.append(result)
    if files:
        parts.append(Evals("evals", directory, files=files))
    return parts


def read_run(directory: Path, root: Path, notes: list[str]) -> Part | None:
    """A pretraining, SFT or DPO run directory, told apart by its resolved recipe (None, said in ``notes``, when unreadable)."""
    path = directory / RESOLVED_RECIPE
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        tree = err
    if not isinstance(tree, dict):
        why = type(tree).__name__ if isinstance(tree, Exception) else "not a YAML mapping"
        notes.append(f"{_relative(path, root)}: unreadable ({why}), so that run is not reported; it is the first file "
                     "a run writes, restore it from the recipe the run was started with")
        return None
    if "stages" in tree:
        return read_pretrain(directory)
    kind = "dpo" if isinstance(tree.get("train"), dict) and "beta" in tree["train"] else "sft"
    part = Post(kind, directory, tree=tree, log=read_jsonl(directory / "log.jsonl"),
                evals=read_jsonl(directory / "evals.jsonl"))
    if (directory / DATA_REPORT).is_file():
        part.data_report = _json(directory / DATA_REPORT, part.notes)
    return part


def read_pretrain(directory: Path) -> Pretrain:
    part = Pretrain("pretrain", directory, log=read_jsonl(directory / "log.jsonl"),
                    evals=read_jsonl(directory / "evals.jsonl"), decisions=read_jsonl(directory / "decisions.jsonl"))
    try:
        part.recipe = load_recipe(directory / RESOLVED_RECIPE, [f"out={directory}"])
        part.stages = plan_stages(part.recipe)
    except SmollabError as err:
        part.notes.append(f"stage spans, planned steps and the mixture schedule unavailable: {err}")
        return part
    try:
        newest = newest_checkpoint_meta(directory)
        part.newest_meta = newest[1] if newest else None
        part.sampler, part.sampler_step, part.sampler_origin = load_run(directory)
    except SmollabError as err:
        part.notes.append(f"mixture schedule unavailable: {err}")
    for summary in sorted((directory / "profile").glob("summary-*.json")):
        if (data := _json(summary, part.notes)) is not None:
            part.profile[summary.stem.removeprefix("summary-")] = data
    return part


def read_curation(directory: Path) -> Curation:
    part = Curation("curation", directory)
    if (directory / CURATION_REPORT).is_file():
        part.report = _json(directory / CURATION_REPORT, part.notes)
    classifier = (part.report or {}).get("classifier")
    if classifier is None and (directory / "classifier" / "config.json").is_file():
        classifier = _json(directory / "classifier" / "config.json", part.notes)
    part.classifier = classifier if isinstance(classifier, dict) and "metrics" in classifier else None
    return part


def read_sweep(directory: Path) -> Sweep:
    """The comparison exactly as `smollab ablate --report` builds it, and RegMix's fit in RegMix mode."""
    from smollab.experiments.sweep_report import compare, fit_regmix

    part = Sweep("sweep", directory)
    try:
        part.comparison = compare(directory)
        if part.comparison["mode"] == "regmix":
            part.regmix, _ = fit_regmix(directory, part.comparison)
    except SmollabError as err:
        part.notes.append(f"sweep comparison unavailable: {err}")
    return part


def eval_file(path: Path, data) -> EvalFile | None:
    """``smollab eval --out`` results (smollab's harness, or lm-eval's through ``--harness lm-eval``); None for other JSON."""
    if not isinstance(data, dict):
        return None
    tasks: dict[str, dict[str, tuple[float, float | None]]] = {}
    items: dict[str, int] = {}
    if isinstance(data.get("tasks"), dict) and isinstance(data.get("model"), dict):
        for name, task in data["tasks"].items():
            metrics = task.get("metrics") if isinstance(task, dict) else None
            if not isinstance(metrics, dict):
                return None
            tasks[name] = {m: (v["value"], v.get("stderr")) for m, v in metrics.items()
                           if isinstance(v, dict) and _number(v.get("value"))}
            items[name] = task.get("items")
        model = data["model"].get("name", path.stem)
    elif isinstance(data.get("results"), dict) and "versions" in data:
        for name, metrics in data["results"].items():
            if not isinstance(metrics, dict):
                return None
            values = {key.split(",")[0]: v for key, v in metrics.items() if _number(v) and "_stderr" not in key}
            errors = {key.split(",")[0].removesuffix("_stderr"): v for key, v in metrics.items() if "_stderr" in key}
            tasks[name] = {m: (v, errors.get(m) if _number(errors.get(m)) else None) for m, v in values.items()}
        model = (data.get("smollab_model") or {}).get("name", path.stem)
    else:
        return None
    return EvalFile(path, str(model), {t: m for t, m in tasks.items() if m}, items)


def _demo_steps(data) -> list[dict] | None:
    steps = data.get("steps") if isinstance(data, dict) else data
    if isinstance(steps, list) and all(isinstance(s, dict) and "name" in s for s in steps):
        return steps
    return None


def _json(path: Path, notes: list[str]):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        notes.append(f"{path.name}: not readable JSON ({type(err).__name__}), skipped")
        return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)
