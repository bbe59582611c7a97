"""The step runner behind ``smollab demo``: ordered named steps, resumable, timed, failures recorded.

A step is a ``(name, function)`` pair. The function takes the :class:`Demo` and returns its summary:
a JSON-able dict of the numbers it produced, whose ``outputs`` lists the paths (relative to OUT) it
wrote; ``None`` (no summary) and a path (its one output) are accepted too, so a step can be one line.
The state is ``OUT/demo.json``: one entry per step, ``{"name", "status": "done" | "failed" | "pending",
"seconds", "summary", "error"}``, rewritten atomically (a temporary file, then one rename) after every
change, so a kill at any moment leaves the last consistent state behind.

Design decisions and trade-offs:

* **Resume is per step.** A run starts at the first step that is not done, or that is done but whose
  outputs are gone, and runs every step from there: each step reads what the ones before it wrote, so
  the results after a redone step would be stale. Finished steps before it are read from
  ``demo.json`` and never redone.
* **A step that runs starts clean.** Each step clears what it writes before it works, rather than
  leaning on its verb's own resume (datatrove's completion markers, training checkpoints): those
  trust that the settings did not change, and a retry may follow a fix. The cost is that a step
  killed near its end is paid again in full, at most a few minutes here.
* **One mode per directory.** Each finished step records its mode (``quick`` or ``full``) in its
  summary, and resuming in the other mode is refused: quick data under a full model (or the
  reverse) would be neither.
* **Failures are one line.** Any exception stops the run with a ``SmollabError`` naming the step and
  the cause, and is recorded as the step's ``error``; the next run retries that step. One that is not
  a ``SmollabError`` (a bug, not a user's problem) also prints its traceback first. There is no
  "running" status: a step in progress is ``pending``, so a killed step is simply retried.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from smollab.errors import SmollabError

STATE = "demo.json"


@dataclass(frozen=True)
class Demo:
    """What every step is given: the output directory, the mode, and the console its progress goes to."""

    out: Path
    quick: bool
    console: Console

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    def fresh(self, name: str) -> Path:
        """``OUT/name``, emptied: a step's clean slate."""
        path = self.out / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to OUT when it lies inside it (how ``outputs`` are recorded), else as given."""
        try:
            return str(Path(path).resolve().relative_to(self.out.resolve()))
        except ValueError:
            return str(path)


Step = tuple[str, Callable[[Demo], "dict | os.PathLike | None"]]


def run_steps(steps: Sequence[Step], demo: Demo, restart: bool = False) -> list[dict]:
    """Run (or resume) ``steps`` in ``demo.out``; returns the state entries, one per step."""
    if demo.out.exists() and not demo.out.is_dir():
        raise SmollabError(f"--out {demo.out} is a file, not a directory; give a directory for the demo")
    if restart:
        _clear(steps, demo)
    records = _load_state(steps, demo.out)
    start = _first_to_run(records, demo)
    for i in range(start, len(records)):
        records[i] = _entry(records[i]["name"], "pending")
    _write_state(demo.out, records)
    total = len(steps)
    for i, (name, function) in enumerate(steps):
        header = f"step {i + 1}/{total} {name}"
        if i < start:
            seconds = records[i]["seconds"]
            demo.console.print(f"[bold]{header}[/]: done ({seconds:.0f} s), outputs present: skipped", highlight=False)
            continue
        description = _describe(function)
        title = f"[bold]{header}[/]" + (f" · {description}" if description else "")
        demo.console.rule(title, align="left", style="dim")
        started = time.perf_counter()
        try:
            summary = _summary(function(demo), demo) | {"mode": demo.mode}
        except Exception as err:
            seconds = time.perf_counter() - started
            line = _one_line(err)
            records[i] = _entry(name, "failed", seconds, error=line)
            _write_state(demo.out, records)
            if not isinstance(err, SmollabError):
                demo.console.print_exception()
            raise SmollabError(f"demo {header} failed after {seconds:.0f} s: {line} (recorded in {demo.out / STATE}; "
                               "run the same command again to retry from this step)") from err
        records[i] = _entry(name, "done", time.perf_counter() - started, summary)
        _write_state(demo.out, records)
    return records


def _entry(name: str, status: str, seconds: float = 0.0, summary: dict | None = None, error: str | None = None) -> dict:
    return {"name": name, "status": status, "seconds": round(seconds, 2), "summary": summary or {}, "error": error}


def _load_state(steps: Sequence[Step], out: Path) -> list[dict]:
    """One entry per step, in ``steps``' order: the recorded one by name, else a pending one."""
    path = out / STATE
    recorded = {}
    if path.exists():
        try:
            recorded = {entry["name"]: entry for entry in json.loads(path.read_text())}
        except (json.JSONDecodeError, TypeError, KeyError) as err:
            raise SmollabError(f"{path} is not a demo state file ({err}); pass --restart to start the demo "
                               "over") from None
    return [recorded.get(name) or _entry(name, "pending") for name, _ in steps]


def _first_to_run(records: list[dict], demo: Demo) -> int:
    """The index of the first step that is not done or whose outputs are gone (``len`` when all are in place)."""
    done = [record for record in records if record["status"] == "done"]
    for record in done:
        mode = record["summary"].get("mode")
        if mode != demo.mode:
            flag = "with" if mode == "quick" else "without"
            raise SmollabError(f"{demo.out} holds a {mode} demo (its step {record['name']} ran {flag} --quick); run "
                               f"{flag} --quick to resume it, or add --restart to start over in {demo.mode} mode")
    for i, record in enumerate(records):
        if record["status"] != "done":
            return i
        missing = [p for p in record["summary"].get("outputs", []) if not (demo.out / p).exists()]
        if missing:
            demo.console.print(f"{record['name']}: done before, but {demo.out / missing[0]} is gone; "
                               "redoing it and the steps after it", highlight=False)
            return i
    return len(records)


def _write_state(out: Path, records: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / f".{STATE}.tmp"
    temporary.write_text(json.dumps(records, indent=1) + "\n")
    os.replace(temporary, out / STATE)


def _clear(steps: Sequence[Step], demo: Demo) -> None:
    """``--restart``: the state file and every step's directory ``OUT/<name>``, nothing else of OUT."""
    removed = [demo.out / STATE] if (demo.out / STATE).exists() else []
    removed += [demo.out / name for name, _ in steps if (demo.out / name).is_dir()]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if removed:
        demo.console.print(f"--restart: removed {', '.join(str(p) for p in removed)}", highlight=False)


def _summary(result, demo: Demo) -> dict:
    if result is None:
        return {}
    if isinstance(result, os.PathLike):
        return {"outputs": [demo.relative(result)]}
    if isinstance(result, dict):
        return result
    raise TypeError(f"a demo step returns its summary (a dict), a path or None, not {type(result).__name__}")


def _describe(function: Callable) -> str:
    """The first line of the step function's docstring: what the header says the step does."""
    return (function.__doc__ or "").strip().split("\n")[0]


def _one_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(err, SmollabError) else f"{type(err).__name__}: {text}".rstrip(": ")
