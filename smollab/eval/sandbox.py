"""Run untrusted generated code (HumanEval completions) in a separate, limited process.

Each program runs in a fresh ``python -I`` child with a wall-clock timeout (the whole process group
is killed), ``resource`` limits on CPU time, address space, file size and open files, a private
temporary working directory removed afterwards, a scrubbed environment, and no network: a new
network namespace (unprivileged user namespaces) where the kernel allows it, and in every case a
guard that replaces ``socket`` and refuses writes outside the working directory, subprocesses and
deletions. The trade-off: the guard lives inside the interpreter, so it stops accidents and
careless code (what model completions are), not a determined attacker; run hostile code in a VM.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000

# Installed in the child before the program runs: the program sees no sockets, cannot start
# processes, and cannot write or delete outside its working directory.
_GUARD = r"""
import builtins, io, os, socket, subprocess, shutil, sys
_ROOT = os.path.realpath(os.getcwd())
def _refuse(*a, **k):
    raise PermissionError("disabled in the smollab sandbox")
class _NoSocket:
    def __init__(self, *a, **k):
        raise PermissionError("network access is disabled in the smollab sandbox")
socket.socket = _NoSocket
socket.create_connection = _refuse
socket.socketpair = _refuse
def _inside(path):
    if isinstance(path, int):
        return True
    return os.path.realpath(os.fspath(path)).startswith(_ROOT + os.sep)
_open = builtins.open
def _guarded_open(file, mode="r", *a, **k):
    if any(c in mode for c in "wax+") and not _inside(file):
        raise PermissionError(f"writing outside the sandbox directory is disabled: {file}")
    return _open(file, mode, *a, **k)
builtins.open = io.open = _guarded_open
_os_open = os.open
def _guarded_os_open(path, flags, *a, **k):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC) and not _inside(path):
        raise PermissionError(f"writing outside the sandbox directory is disabled: {path}")
    return _os_open(path, flags, *a, **k)
os.open = _guarded_os_open
for _name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "remove", "unlink", "rmdir",
              "removedirs", "rename", "renames", "replace", "truncate", "chmod", "chown", "putenv",
              "execv", "execve", "execvp", "execvpe", "spawnv", "spawnve", "setuid", "chdir", "chroot"):
    if hasattr(os, _name):
        setattr(os, _name, _refuse)
subprocess.Popen = subprocess.run = subprocess.call = subprocess.check_output = _refuse
shutil.rmtree = shutil.move = shutil.chown = _refuse
del builtins, io, socket, subprocess, shutil
_source = sys.stdin.read()
exec(compile(_source, "program.py", "exec"), {"__name__": "__main__"})
"""


@dataclass(frozen=True)
class Outcome:
    """``status`` is passed, failed, timeout or out_of_memory; ``detail`` is the stderr tail."""

    status: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _limit(timeout: float, memory_mb: int):
    def apply() -> None:
        import resource

        os.setsid()
        try:  # no network at all, where unprivileged user namespaces are allowed
            ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER | CLONE_NEWNET)
        except OSError:
            pass
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_program(source: str, *, timeout: float = 10.0, memory_mb: int = 1024) -> Outcome:
    """Execute ``source`` once in the sandbox; it passes when it exits with status 0."""
    workdir = tempfile.mkdtemp(prefix="smollab-sandbox-")
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _GUARD], cwd=workdir, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limit(timeout, memory_mb))
        try:
            _, err = proc.communicate(source.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Outcome("timeout", f"killed after {timeout:g} s wall clock")
        detail = err.decode(errors="replace")[-2000:]
        if proc.returncode == 0:
            return Outcome("passed", detail)
        if "MemoryError" in detail:
            return Outcome("out_of_memory", detail)
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return Outcome("timeout", detail)
        return Outcome("failed", detail)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_programs(sources: Sequence[str], *, timeout: float = 10.0, memory_mb: int = 1024,
                 workers: int | None = None) -> list[Outcome]:
    """Run many programs, ``workers`` at a time (default: one per CPU core)."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda s: run_program(s, timeout=timeout, memory_mb=memory_mb), sources))
