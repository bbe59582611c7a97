import ctypes
import dataclasses
import errno
import os
import select
import socket
import tempfile
from pathlib import Path

import pytest

from smollab.errors import SmollabError
from smollab.eval import sandbox
from smollab.eval.cli import eval_command
from smollab.eval.evaluate import run_task
from smollab.eval.harness import SmolLM
from smollab.eval.sandbox import CLONE_NEWNET, CLONE_NEWUSER, run_program
from smollab.eval.tasks import TASKS
from smollab.eval.tasks.humaneval import score


def _kernel_allows_namespaces() -> bool:
    """Asked of the kernel directly, not through the sandbox's own probe, so a broken probe cannot skip tests."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if ctypes.CDLL(None).unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


NO_NAMESPACES = ("this kernel refuses unprivileged user + network namespaces (`unshare -rn true` fails), "
                 "so the isolated sandbox cannot be exercised here")
needs_namespaces = pytest.mark.skipif(not _kernel_allows_namespaces(), reason=NO_NAMESPACES)


def _refuse(flags: int) -> int:
    """What libc's unshare does where unprivileged user namespaces are disabled."""
    ctypes.set_errno(errno.EPERM)
    return -1


@pytest.fixture
def namespaces_refused(monkeypatch):
    monkeypatch.setattr(sandbox, "_unshare", _refuse)


@pytest.fixture(params=["isolated", "unisolated"])
def mode(request, monkeypatch) -> dict:
    """``run_program`` arguments for both ways code runs: in namespaces, or (namespaces refused) with
    the user's explicit ``allow_unisolated_code``; the limits must hold in both."""
    if request.param == "isolated":
        if not _kernel_allows_namespaces():
            pytest.skip(NO_NAMESPACES)
        return {}
    monkeypatch.setattr(sandbox, "_unshare", _refuse)
    return {"allow_unisolated_code": True}


def test_infinite_loop_times_out(mode):
    outcome = run_program("while True:\n    pass\n", timeout=1.5, **mode)
    assert outcome.status == "timeout" and not outcome.passed


def test_memory_bomb_is_killed(mode):
    outcome = run_program("chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n", timeout=10,
                          memory_mb=512, **mode)
    assert outcome.status == "out_of_memory"


def test_writing_outside_the_private_directory_fails(tmp_path):
    target = tmp_path / "escaped.txt"
    for code in (f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
                 f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')"):
        assert run_program(code, allow_unisolated_code=True).status == "failed"
    assert not target.exists()
    assert run_program("open('inside.txt', 'w').write('ok')\nassert open('inside.txt').read() == 'ok'",
                       allow_unisolated_code=True).passed


def test_private_directory_is_removed_afterwards():
    before = set(Path(tempfile.gettempdir()).glob("smollab-sandbox-*"))
    assert run_program("import os\nopen('f', 'w').write('x')\nprint(os.getcwd())", allow_unisolated_code=True).passed
    assert set(Path(tempfile.gettempdir()).glob("smollab-sandbox-*")) == before


def test_opening_a_socket_fails():
    outcome = run_program("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
                          allow_unisolated_code=True)
    assert outcome.status == "failed" and "network access is disabled" in outcome.detail


@needs_namespaces
def test_raw_sockets_cannot_reach_a_listener_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        code = (f"import _socket\ns = _socket.socket()\ns.settimeout(2)\n"
                f"try:\n    s.connect(('127.0.0.1', {port}))\n"
                f"except OSError as err:\n    raise SystemExit(f'connect failed: {{err}}')\n")
        outcome = run_program(code)
        pending, _, _ = select.select([server], [], [], 0)  # a completed handshake would be waiting here
    assert not pending, "the sandboxed program connected to the host's loopback"
    assert outcome.status == "failed" and "connect failed" in outcome.detail


def test_humaneval_refuses_in_one_line_where_namespaces_cannot_be_created(namespaces_refused):
    rows = TASKS["humaneval"].docs()[:1]
    with pytest.raises(SmollabError, match="--allow-unisolated-code") as err:
        score(rows, [rows[0]["canonical_solution"]])
    assert "Operation not permitted" in str(err.value) and "\n" not in str(err.value)


def test_a_program_whose_process_gets_no_namespace_never_starts(namespaces_refused):
    with pytest.raises(SmollabError, match="cannot be isolated"):
        run_program("raise SystemExit(0)")


def test_eval_refuses_humaneval_before_loading_the_model(namespaces_refused, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(SmollabError, match="--allow-unisolated-code"):
        eval_command(missing, tasks="piqa,humaneval", limit=1)
    with pytest.raises(SmollabError, match="not found"):  # with consent, it gets as far as the model
        eval_command(missing, tasks="piqa,humaneval", limit=1, allow_unisolated_code=True)


def test_consent_reaches_the_humaneval_scorer(namespaces_refused, tiny_model, tokenizer):
    task = dataclasses.replace(TASKS["humaneval"], max_new_tokens=4)
    rows, lm = task.docs()[:2], SmolLM(tiny_model, tokenizer, batch_size=2)
    with pytest.raises(SmollabError, match="--allow-unisolated-code"):
        run_task(lm, task, rows, allow_unisolated_code=False)
    metrics, samples = run_task(lm, task, rows, allow_unisolated_code=True)
    assert metrics["pass@1"]["value"] == 0.0 and [s["pred"] for s in samples] == ["failed", "failed"]


def test_all_canonical_humaneval_solutions_pass_and_a_wrong_one_fails():
    rows = TASKS["humaneval"].docs()
    results = score(rows, [r["canonical_solution"] for r in rows], allow_unisolated_code=True)
    assert sum(r.metrics["pass@1"] for r in results) == 164
    wrong = score(rows[:1], ["    return not True\n"], allow_unisolated_code=True)
    assert wrong[0].metrics["pass@1"] == 0.0 and wrong[0].pred == "failed"
