"""Ablation sweeps: one sweep file → N variant recipes → N ordinary run directories, trained and resumable.

A variant's recipe is the base recipe's raw tree + the sweep's overrides + its axis values, each
set as a ``smollab train`` override is (a mapping replaces the whole field), then validated like any
recipe: every variant is checked before anything trains, and its recipe is written into its own run
directory, so ``smollab train <variant>/recipe.yaml`` reproduces it without smollab's sweep code.

Design choices:

- Variants share their data. Variants whose ``tokenizer`` and ``data`` sections agree (the usual
  case: axes over mixtures, LR, seeds) get one tokenizer and one set of shards under
  ``<out>/data-<hash>/``: a per-run BPE is trained there once (the variants name it as
  ``tokenizer.source``) and ``data.shards_dir`` points there unless the base sets it. Mixing never
  changes the tokenization, so N variants tokenize once, not N times.
- The run directory is the state. A variant whose newest published checkpoint is at the recipe's
  last step, exported and evaluated, is finished and skipped; one with a checkpoint before that is
  resumed (``train(resume=True)``); one without is started over (``--overwrite`` loses at most the
  log of steps no checkpoint kept). Rerunning the same command after a crash or SIGKILL therefore
  continues where it stopped. A variant whose run was made from another recipe than the one now
  planned fails the plan, naming the field: resuming it would mix two configurations.
- No two processes train one variant. Each variant is trained under an exclusive ``flock`` on
  ``<variant>/.sweep.lock``; a process that finds it held skips the variant (``busy``). Kernel file
  locks vanish with their process, SIGKILL included, so there is no stale marker to clean up; the
  cost is that a shared file system must support ``flock`` (NFSv4 and Lustre do). ``processes``
  and Slurm assign variants themselves, so there the lock is only a safety net. Shared data is
  prepared under a blocking lock, so Slurm array tasks that start together tokenize once.
- Replicas are a seed axis. Variants that differ only in ``train.seed`` are one configuration
  (``config``), collapsed by the report into mean ± standard error.
- RegMix mode replaces the axes by K proxies whose stage mixture is drawn by
  ``smollab.experiments.regmix.sample_mixtures`` around the base's; the prior's unset settings
  keep regmix's own defaults.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.console import Console
from rich.markup import escape

from smollab.data.mixture import plan_stages
from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.recipe import Recipe, apply_overrides, dump_recipe, format_validation_error, read_tree, validate_tree
from smollab.train import checkpoint

SEED_FIELD = "train.seed"
PLAN_FILE, EVENTS_FILE, SBATCH_FILE, VARIANT_RECIPE, LOCK_FILE = (
    "sweep.json", "sweep.jsonl", "sweep.sbatch", "recipe.yaml", ".sweep.lock")
LAUNCHERS = ("local", "processes", "slurm")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Axis(_Strict):
    field: str = Field(description="a dotted recipe field, e.g. stages.0.mixture or optim.lr")
    values: list[Any] = Field(min_length=1, description="whole values: a mapping replaces the field")
    names: list[str] | None = Field(None, description="labels of the values, used in variant names")

    @model_validator(mode="after")
    def _names_fit(self) -> Axis:
        if self.names is not None:
            if len(self.names) != len(self.values):
                raise ValueError(f"{len(self.names)} names for {len(self.values)} values; give one name per value")
            if bad := [name for name in self.names if not _NAME.fullmatch(name)]:
                raise ValueError(f"name '{bad[0]}' is not a directory name; use letters, digits and . _ + -")
        return self


class RegMixSettings(_Strict):
    """Unset prior and search settings keep ``smollab.experiments.regmix``'s defaults."""

    stage: int = Field(0, ge=0, description="the stage whose mixture the proxies vary")
    sources: list[str] | None = Field(None, description="sources to mix (default: the stage's); new ones enter at absent_share")
    concentration: float | None = Field(None, gt=0, description="Dirichlet concentration: higher samples closer to the base")
    min_share: float | None = Field(None, ge=0, lt=1)
    absent_share: float | None = Field(None, gt=0, lt=1)
    method: Literal["auto", "lightgbm", "linear"] = "auto"
    seed: int = Field(0, description="seeds the draws, the CV folds and the search")
    candidates: int | None = Field(None, ge=1)
    top_k: int | None = Field(None, ge=1)

    def prior(self) -> dict:
        return self.model_dump(include={"concentration", "min_share", "absent_share"}, exclude_none=True)

    def search_options(self) -> dict:
        return self.model_dump(include={"candidates", "top_k"}, exclude_none=True)


class SweepConfig(_Strict):
    name: str
    base: str = Field(description="recipe path relative to the sweep file, or a bundled recipe's name (demo)")
    out: str | None = Field(None, description="sweep directory; default runs/sweeps/<name>")
    overrides: list[str] = Field([], description="dotted overrides applied to the base for every variant")
    axes: list[Axis] = []
    zip: bool = Field(False, description="pair the axes value by value instead of their cartesian product")
    target: str = Field("heldout.mean", description="heldout.mean | heldout.<source> | <task>.<metric> | tasks.mean | loss")
    regmix: RegMixSettings | None = None

    @model_validator(mode="after")
    def _axes_fit(self) -> SweepConfig:
        fields = [axis.field for axis in self.axes]
        if duplicated := sorted({f for f in fields if fields.count(f) > 1}):
            raise ValueError(f"axes: field {duplicated[0]} has two axes; put all its values on one")
        lengths = {len(axis.values) for axis in self.axes}
        if self.zip and len(lengths) > 1:
            raise ValueError(f"zip: true pairs the axes value by value, but they have {sorted(lengths)} values; "
                             "give every axis as many values, or drop zip")
        return self


@dataclass(frozen=True)
class Target:
    """What "better" means: a held-out loss or the final training loss (lower) or an eval metric (higher)."""

    name: str

    @property
    def lower_is_better(self) -> bool:
        return self.name == "loss" or self.name.startswith("heldout.")

    @property
    def direction(self) -> str:
        return "lower" if self.lower_is_better else "higher"

    def check(self, recipe: Recipe, where: str) -> None:
        head, _, tail = self.name.partition(".")
        if self.name == "loss":
            return
        if not tail:
            raise SmollabError(f"{where}: target '{self.name}' is not a target; write heldout.mean, heldout.<source>, "
                               "<task>.<metric>, tasks.mean or loss")
        if head == "heldout":
            if recipe.eval.heldout is None:
                raise SmollabError(f"{where}: target {self.name} needs held-out losses; set eval.heldout in the base "
                                   "recipe (e.g. overrides: [eval.heldout.tokens=514]) or pick another target")
            sources = {source for stage in recipe.stages for source in stage.mixture} | set(recipe.eval.heldout.sources or [])
            if tail != "mean" and tail not in sources:
                raise SmollabError(f"{where}: target {self.name}: '{tail}' is not a scored source; use one of "
                                   f"{', '.join(sorted(sources))} or heldout.mean")
            return
        from smollab.eval.tasks import expand

        tasks = [task.name for task in expand(recipe.eval.tasks)]
        if head not in (tasks + ["tasks"] if tasks else []):
            raise SmollabError(f"{where}: target {self.name}: task '{head}' is not in eval.tasks "
                               f"({', '.join(tasks) or 'none'}); add it to the base recipe or pick another target")


@dataclass(frozen=True)
class Variant:
    index: int
    name: str
    config: str
    """The name seed replicas share: the variant's name without its seed."""
    seed: int | None
    """The ``train.seed`` axis value, None without a seed axis."""
    values: dict[str, Any]
    recipe: Recipe
    data_key: str

    @property
    def dir(self) -> Path:
        return self.recipe.out_dir


@dataclass(frozen=True)
class SweepPlan:
    file: Path
    name: str
    out: Path
    target: Target
    mode: Literal["axes", "regmix"]
    variants: list[Variant]
    data: dict[str, Recipe]
    """Per data key, the recipe whose tokenizer and shards its variants share."""
    regmix: dict | None = None

    def select(self, only: str | None) -> list[Variant]:
        if only is None:
            return self.variants
        for variant in self.variants:
            if only in (variant.name, str(variant.index)):
                return [variant]
        names = ", ".join(v.name for v in self.variants[:6]) + (", ..." if len(self.variants) > 6 else "")
        raise SmollabError(f"--only {only}: no variant has that name or index; give 0..{len(self.variants) - 1} or a name ({names})")

    def to_json(self) -> dict:
        return {"name": self.name, "file": str(self.file), "out": str(self.out), "mode": self.mode,
                "target": {"name": self.target.name, "direction": self.target.direction},
                "variants": [{"index": v.index, "name": v.name, "config": v.config, "seed": v.seed, "values": v.values,
                              "recipe": str(v.dir / VARIANT_RECIPE), "data": v.data_key,
                              "total_tokens": plan_stages(v.recipe)[-1].end_step * v.recipe.batch.tokens_per_step}
                             for v in self.variants],
                "data": {key: str(recipe.out_dir) for key, recipe in self.data.items()}, "regmix": self.regmix}


def load_sweep(path: Path, out: str | None = None) -> SweepConfig:
    """The validated sweep file (``out`` replaces its ``out``); any problem is one SmollabError line."""
    if not path.is_file():
        raise SmollabError(f"sweep file {path} {'is a directory' if path.is_dir() else 'does not exist'}; "
                           "pass the path of a sweep YAML (see recipes/sweeps/)")
    tree = read_tree(path, "name, base, axes", example="recipes/sweeps/")
    try:
        sweep = SweepConfig.model_validate(tree)
    except ValidationError as err:
        raise SmollabError(format_validation_error(str(path), err).replace("recipe reference (docs/recipe-reference.md)",
                                                                           "sweep reference (docs/experiments.md)")) from None
    return sweep.model_copy(update={"out": out}) if out else sweep


def sweep_out(sweep: SweepConfig) -> Path:
    return Path(sweep.out or f"runs/sweeps/{sweep.name}")


def base_path(sweep: SweepConfig, path: Path) -> Path:
    """``base: demo`` (no ``/``, no suffix) names a recipe bundled with smollab; anything else is relative to the sweep file."""
    bundled = ASSETS / "recipes" / f"{sweep.base}.yaml"
    if "/" not in sweep.base and not sweep.base.endswith((".yaml", ".yml")) and bundled.is_file():
        return bundled
    return path.parent / sweep.base


def plan_sweep(path: Path, out: str | None = None, regmix_k: int | None = None,
               warn: Callable[[str], None] = print) -> SweepPlan:
    """Every variant's validated recipe (in RegMix mode, ``regmix_k`` proxies), before anything trains."""
    sweep = load_sweep(path, out)
    root = sweep_out(sweep)
    base = read_tree(base_path(sweep, path), "name, data, stages")
    try:
        apply_overrides(base, sweep.overrides)
    except SmollabError as err:
        raise SmollabError(f"{path}: overrides: {err}") from None
    regmix_info = None
    if regmix_k is None:
        assignments = _axis_assignments(sweep)
    else:
        if sweep.axes:
            warn(f"warning: {path}: RegMix mode ignores the axes ({', '.join(a.field for a in sweep.axes)}); "
                 "its proxies vary one stage's mixture at the base seed")
        assignments, regmix_info = _regmix_assignments(sweep, path, base, regmix_k)
    target = Target(sweep.target)
    variants, data = [], {}
    for index, (name, config, values) in enumerate(assignments):
        recipe, key, data_recipe = _variant_recipe(base, values, root / name, f"{path}: variant {name}")
        target.check(recipe, f"{path}: variant {name}")
        seed = values.get(SEED_FIELD)
        variants.append(Variant(index, name, config, seed, values, recipe, key))
        data.setdefault(key, data_recipe)
    names = [v.name for v in variants]
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise SmollabError(f"{path}: two variants are named '{duplicated[0]}'; give the axes distinct `names:`")
    plan = SweepPlan(path, sweep.name, root, target, "axes" if regmix_k is None else "regmix", variants, data, regmix_info)
    for variant in variants:
        _check_unchanged(variant, path)
    return plan


def _axis_assignments(sweep: SweepConfig) -> list[tuple[str, str, dict]]:
    """(variant name, config name, {field: value}) for the cartesian product (or zip) of the axes."""
    labelled = [[(axis.field, value, (axis.names or [_label(axis.field, v) for v in axis.values])[i])
                 for i, value in enumerate(axis.values)] for axis in sweep.axes]
    if sweep.zip:
        combos = list(zip(*labelled))
    else:
        combos = [()]
        for axis in labelled:
            combos = [combo + (choice,) for combo in combos for choice in axis]
    out = []
    for combo in combos:
        name = "_".join(label for _, _, label in combo) or "base"
        config = "_".join(label for field, _, label in combo if field != SEED_FIELD) or "base"
        out.append((name, config, {field: value for field, value, _ in combo}))
    return out


def _label(field: str, value: Any) -> str:
    """A directory-safe name for an axis value: ``seed-3``, ``lr-0.001``, ``web0.6-code0.4``."""
    if isinstance(value, dict):
        text = "-".join(f"{k}{_plain(v)}" for k, v in value.items())
    else:
        text = f"{field.rsplit('.', 1)[-1]}-{_plain(value)}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "value"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "-".join(map(_plain, value))
    return str(value)


def _regmix_assignments(sweep: SweepConfig, path: Path, base: dict, k: int) -> tuple[list[tuple[str, str, dict]], dict]:
    from smollab.experiments import regmix

    settings = sweep.regmix or RegMixSettings()
    recipe = validate_tree(base, f"{path}: base")
    if settings.stage >= len(recipe.stages):
        raise SmollabError(f"{path}: regmix.stage: {settings.stage} is not a stage of the base recipe; "
                           f"use 0..{len(recipe.stages) - 1}")
    stage = recipe.stages[settings.stage]
    sources = list(dict.fromkeys([*stage.mixture, *(settings.sources or [])]))
    if k < (needed := regmix.min_proxies(len(sources))):
        raise SmollabError(f"--regmix {k}: a fit over {len(sources)} sources needs at least {needed} proxies "
                           "(two per source, never under 8); raise K")
    try:
        mixtures = regmix.sample_mixtures(stage.mixture, k, seed=settings.seed, sources=settings.sources, **settings.prior())
    except SmollabError as err:
        raise SmollabError(f"{path}: regmix: {err}") from None
    field = f"stages.{settings.stage}.mixture"
    width = max(2, len(str(k - 1)))
    names = [f"regmix-{i:0{width}d}" for i in range(k)]
    info = {"stage": settings.stage, "stage_name": stage.name, "field": field, "base_mixture": stage.mixture,
            "sources": sources, "base": sweep.base, "settings": settings.model_dump()}
    return [(name, name, {field: mixture}) for name, mixture in zip(names, mixtures)], info


def _variant_recipe(base: dict, values: dict, out: Path, where: str) -> tuple[Recipe, str, Recipe]:
    """The variant's recipe (pointing at its shared data), its data key, and the recipe that prepares that data."""
    tree = copy.deepcopy(base)
    overrides = [f"{field}={yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()}"
                 for field, value in values.items()]
    try:
        apply_overrides(tree, [*overrides, f"out={out}", f"name={out.name}"])
    except SmollabError as err:
        raise SmollabError(f"{where}: {err}") from None
    recipe = validate_tree(tree, where)
    shared = {"tokenizer": recipe.tokenizer.model_dump(mode="json"), "data": recipe.data.model_dump(mode="json")}
    key = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:8]
    data_dir = out.parent / f"data-{key}"
    data_recipe = validate_tree({**tree, "out": str(data_dir)}, where)
    if recipe.tokenizer.train is not None:
        tree["tokenizer"] = {"source": str(data_dir / "tokenizer")}
    tree["data"] = {**tree["data"], "shards_dir": str(data_recipe.shards_dir)}
    return validate_tree(tree, where), key, data_recipe


def variant_state(recipe: Recipe) -> Literal["new", "partial", "finished"]:
    """``finished``: the newest published checkpoint is the last step and its export (and evaluation) exist."""
    published = checkpoint.list_checkpoints(recipe.out_dir / "checkpoints")
    if not published:
        return "new"
    last = plan_stages(recipe)[-1].end_step
    if int(published[-1].name.removeprefix("step-")) < last or not (recipe.out_dir / "hf" / f"step-{last}").is_dir():
        return "partial"
    if recipe.eval.tasks or recipe.eval.heldout is not None:
        evals = recipe.out_dir / "evals.jsonl"
        lines = [json.loads(line) for line in evals.read_text().splitlines() if line] if evals.exists() else []
        if not any(line["step"] == last for line in lines):
            return "partial"
    return "finished"


def _check_unchanged(variant: Variant, path: Path) -> None:
    """A variant holding a run must still be the recipe that run was made from."""
    resolved = variant.dir / "recipe.resolved.yaml"
    if not resolved.exists() or variant_state(variant.recipe) == "new":
        return
    trained = validate_tree(yaml.safe_load(resolved.read_text()), str(resolved))  # fields added since get their defaults
    difference = _first_difference(trained.model_dump(mode="json"), variant.recipe.model_dump(mode="json"))
    if difference:
        field, before, now = difference
        raise SmollabError(f"{path}: variant {variant.name}: its run in {variant.dir} was trained with {field} = {before!r}, "
                           f"now {now!r}; delete {variant.dir} to retrain it, or name the changed variant differently")


def _first_difference(before: Any, now: Any, where: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(before, dict) and isinstance(now, dict):
        keys = dict.fromkeys([*before, *now])
        found = (_first_difference(before.get(k), now.get(k), f"{where}.{k}" if where else k) for k in keys)
        return next((f for f in found if f), None)
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        found = (_first_difference(b, n, f"{where}.{i}") for i, (b, n) in enumerate(zip(before, now)))
        return next((f for f in found if f), None)
    return None if before == now else (where, before, now)


def write_plan(plan: SweepPlan) -> None:
    """``<out>/sweep.json`` and each variant's ``recipe.yaml``."""
    for variant in plan.variants:
        variant.dir.mkdir(parents=True, exist_ok=True)
        dump_recipe(variant.recipe, variant.dir / VARIANT_RECIPE)
    (plan.out / PLAN_FILE).write_text(json.dumps(plan.to_json(), indent=1) + "\n")


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False when another process holds it and ``blocking`` is off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SweepLog:
    """``<out>/sweep.jsonl`` (one line per variant event) and one console line per event."""

    def __init__(self, plan: SweepPlan, console: Console):
        self.path, self.total, self.console = plan.out / EVENTS_FILE, len(plan.variants), console
        self.lock = threading.Lock()

    def emit(self, variant: Variant, event: str, wall_s: float | None = None, **fields) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "variant": variant.name, "index": variant.index,
                  "event": event, **({"wall_s": round(wall_s, 3)} if wall_s is not None else {}), **fields}
        detail = {"started": f"started ({'resuming' if fields.get('resume') else 'fresh'})",
                  "finished": f"[green]done[/] in {wall_s or 0:.1f}s{' (resumed)' if fields.get('resume') else ''}",
                  "skipped": "skipped: finished before",
                  "busy": "skipped: another process is training it",
                  "failed": f"[red]failed[/] after {wall_s or 0:.1f}s: {escape(str(fields.get('error')))}"}[event]
        with self.lock:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            self.console.print(f"[{variant.index + 1}/{self.total}] [bold]{escape(variant.name)}[/]: {detail}",
                               soft_wrap=True, highlight=False)


TrainFn = Callable[[Variant, bool], None]
"""Trains one variant (resuming or fresh); raises SmollabError with one line when it fails."""


def run_variant(variant: Variant, train_fn: TrainFn, log: SweepLog) -> str:
    """Skip, resume or start one variant under its lock; returns the event that ended it."""
    with file_lock(variant.dir / LOCK_FILE, blocking=False) as held:
        if not held:
            log.emit(variant, "busy")
            return "busy"
        state = variant_state(variant.recipe)
        if state == "finished":
            log.emit(variant, "skipped")
            return "skipped"
        resume = state == "partial"
        log.emit(variant, "started", resume=resume)
        started = time.perf_counter()
        try:
            train_fn(variant, resume)
        except SmollabError as err:
            log.emit(variant, "failed", time.perf_counter() - started, resume=resume, error=str(err))
            return "failed"
        log.emit(variant, "finished", time.perf_counter() - started, resume=resume)
        return "finished"


def prepare_data(recipe: Recipe) -> None:
    """The shared tokenizer and shards, made once (datatrove skips finished tasks) under a lock beside them."""
    from smollab.data.tokenize import tokenize_recipe
    from smollab.tokenizer import tokenizer_for_recipe

    with file_lock(recipe.out_dir.with_name(recipe.out_dir.name + ".lock"), blocking=True):
        tokenizer_for_recipe(recipe)
        tokenize_recipe(recipe, workers=os.cpu_count() or 1)


def run_sweep(plan: SweepPlan, variants: list[Variant], launcher: str, parallel: int, console: Console) -> dict[str, str]:
    """Train ``variants`` with the ``local`` or ``processes`` launcher; returns each variant's final event."""
    log = SweepLog(plan, console)
    for key in dict.fromkeys(v.data_key for v in variants):
        prepare_data(plan.data[key])
    if launcher == "local":
        return {v.name: run_variant(v, _train_here, log) for v in variants}
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))}
    with ThreadPoolExecutor(parallel) as pool:
        events = pool.map(lambda v: run_variant(v, lambda variant, resume: _train_subprocess(variant, resume, env), log),
                          variants)
        return dict(zip((v.name for v in variants), events))


def _train_here(variant: Variant, resume: bool) -> None:
    from smollab.train.loop import train

    train(variant.recipe, resume=resume, overwrite=not resume)


def _train_subprocess(variant: Variant, resume: bool, env: dict) -> None:
    command = [sys.executable, "-m", "smollab", "train", str(variant.dir / VARIANT_RECIPE),
               "--resume" if resume else "--overwrite"]
    out = variant.dir / "train.out"
    with out.open("a") as handle:
        handle.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n")
        handle.flush()
        returncode = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
    if returncode != 0:
        lines = [line for line in out.read_text(errors="replace").splitlines() if line.strip()]
        raise SmollabError(f"exit {returncode}: {lines[-1].strip() if lines else 'no output'} (log: {out})")


def write_sbatch(plan: SweepPlan, parallel: int | None, regmix_k: int | None) -> Path:
    """A Slurm job array, one task per variant, each running ``smollab ablate SWEEP --only <index>``."""
    throttle = f"%{parallel}" if parallel else ""
    command = [sys.executable, "-m", "smollab", "ablate", str(plan.file.resolve()), "--only", "$SLURM_ARRAY_TASK_ID",
               "--out", str(plan.out), *(["--regmix", str(regmix_k)] if regmix_k else [])]
    script = "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={plan.name}",
        f"#SBATCH --array=0-{len(plan.variants) - 1}{throttle}",
        f"#SBATCH --output={plan.out.resolve()}/slurm-%A_%a.out",
        f"#SBATCH --chdir={Path.cwd()}",
        "# add your site's resources here, e.g. #SBATCH --partition=gpu --gres=gpu:1 --time=24:00:00",
        "# array task i trains variant i of sweep.json; a finished variant is skipped, a partial one resumed",
        "set -euo pipefail",
        " ".join(command),
        "",
    ])
    path = plan.out / SBATCH_FILE
    plan.out.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    return path
