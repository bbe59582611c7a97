import ctypes
import os
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from smollab.eval.sandbox import CLONE_NEWNET, CLONE_NEWUSER, run_program
from smollab.eval.tasks import TASKS
from smollab.eval.tasks.humaneval import score


def test_infinite_loop_times_out():
    outcome = run_program("while True:\n    pass\n", timeout=1.5)
    assert outcome.status == "timeout" and not outcome.passed


def test_memory_bomb_is_killed():
    outcome = run_program("chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n", timeout=10,
                          memory_mb=512)
    assert outcome.status == "out_of_memory"


def test_writing_outside_the_private_directory_fails(tmp_path):
    target = tmp_path / "escaped.txt"
    for code in (f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
                 f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')"):
        assert run_program(code).status == "failed"
    assert not target.exists()
    assert run_program("open('inside.txt', 'w').write('ok')\nassert open('inside.txt').read() == 'ok'").passed


def test_private_directory_is_removed_afterwards():
    before = set(Path(tempfile.gettempdir()).glob("smollab-sandbox-*"))
    assert run_program("import os\nopen('f', 'w').write('x')\nprint(os.getcwd())").passed
    assert set(Path(tempfile.gettempdir()).glob("smollab-sandbox-*")) == before


def test_opening_a_socket_fails():
    outcome = run_program("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)")
    assert outcome.status == "failed" and "network access is disabled" in outcome.detail


def _user_namespaces_work() -> bool:
    pid = os.fork()
    if pid == 0:
        os._exit(0 if ctypes.CDLL(None).unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


@pytest.mark.skipif(not _user_namespaces_work(), reason="unprivileged user namespaces are disabled here")
def test_raw_sockets_cannot_reach_the_host_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    port = server.getsockname()[1]
    code = f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))"
    assert run_program(code).status == "failed"
    server.close()


def test_all_canonical_humaneval_solutions_pass_and_a_wrong_one_fails():
    rows = TASKS["humaneval"].docs()
    results = score(rows, [r["canonical_solution"] for r in rows])
    assert sum(r.metrics["pass@1"] for r in results) == 164
    wrong = score(rows[:1], ["    return not True\n"])
    assert wrong[0].metrics["pass@1"] == 0.0 and wrong[0].pred == "failed"
