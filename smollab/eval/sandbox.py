"""Run untrusted generated code (HumanEval completions) in a separate, limited process.

Each program runs in a fresh ``python -I`` child with a wall-clock timeout (the whole process group
is killed), ``resource`` limits on CPU time, address space, file size and open files, a private
temporary working directory removed afterwards, a scrubbed environment, new user and network
namespaces (so not even loopback is reachable), and a guard that replaces ``socket`` and refuses
writes outside the working directory, subprocesses and deletions. Isolation fails closed: where the
kernel refuses the namespaces, programs do not run unless the caller passes ``allow_unisolated_code``
(the user's ``--allow-unisolated-code``), because the guard lives inside the interpreter and code
that imports ``_socket`` walks past it. Even isolated, this stops accidents and careless code (what
model completions are), not a determined attacker; run hostile code in a VM.
"""

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from smollab.errors import SmollabError

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child, where dlopen may deadlock

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


def _unshare(flags: int) -> int:
    """libc ``unshare``: 0, or -1 with errno set. Through ctypes a refusal is a return value, never an
    exception, so it must be checked; the one call into the kernel, so tests can make it refuse."""
    return _LIBC.unshare(flags)


def _enter_namespaces() -> int:
    """Move the calling process into new user and network namespaces; 0, or the errno of the refusal."""
    ctypes.set_errno(0)
    if _unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return 0
    return ctypes.get_errno() or errno.EPERM


def isolation_error() -> str | None:
    """Why programs cannot get their own namespaces on this machine, or None when they can.

    Probed in a forked child, the way each program enters them, because ``unshare`` changes the
    process that calls it; the cost is one fork per call."""
    pid = os.fork()
    if pid == 0:
        code = errno.EPERM
        try:
            code = _enter_namespaces()
        finally:
            os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return None if code == 0 else f"unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: {os.strerror(code)}"


def check_isolation(allow_unisolated_code: bool) -> bool:
    """Whether programs will run in their own namespaces; raises when they cannot and the user has
    not allowed running them without."""
    reason = isolation_error()
    if reason and not allow_unisolated_code:
        raise SmollabError(_refusal(reason))
    return reason is None


def _refusal(reason: str) -> str:
    return (f"generated code cannot be isolated from the network here ({reason}); enable unprivileged user "
            "namespaces on this machine, or pass --allow-unisolated-code (in a recipe: "
            "eval.allow_unisolated_code: true) to run it behind the in-interpreter guard only.")


def _limit(timeout: float, memory_mb: int, allow_unisolated_code: bool):
    def apply() -> None:
        import resource

        os.setsid()
        if _enter_namespaces() and not allow_unisolated_code:
            raise OSError("no network namespace")  # Popen raises SubprocessError; the program never starts
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _start(workdir: str, env: dict, limits) -> subprocess.Popen:
    """Start the guarded interpreter; when its set-up before ``exec`` fails for want of namespaces,
    say so in one line (the child cannot report the errno itself)."""
    try:
        return subprocess.Popen([sys.executable, "-I", "-c", _GUARD], cwd=workdir, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=limits)
    except subprocess.SubprocessError:
        reason = isolation_error()
        if reason:
            raise SmollabError(_refusal(reason)) from None
        raise


def run_program(source: str, *, timeout: float = 10.0, memory_mb: int = 1024,
                allow_unisolated_code: bool = False) -> Outcome:
    """Execute ``source`` once in the sandbox; it passes when it exits with status 0.

    Without ``allow_unisolated_code`` a program whose process cannot enter the namespaces is not run:
    this raises ``SmollabError``, naming the reason and the flag."""
    workdir = tempfile.mkdtemp(prefix="smollab-sandbox-")
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
    try:
        proc = _start(workdir, env, _limit(timeout, memory_mb, allow_unisolated_code))
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
                 workers: int | None = None, allow_unisolated_code: bool = False) -> list[Outcome]:
    """Run many programs, ``workers`` at a time (default: one per CPU core); isolation is checked
    once first, so a machine without namespaces refuses before any program starts."""
    check_isolation(allow_unisolated_code)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda s: run_program(s, timeout=timeout, memory_mb=memory_mb,
                                                   allow_unisolated_code=allow_unisolated_code), sources))
