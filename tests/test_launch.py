"""The launch scripts: committed copies are current, and what they execute is the right torchrun command.

The scripts run for real, with fake ``torchrun``, ``srun`` and ``scontrol`` first on PATH (tiny shell
scripts that write their argv to files), so the tests check the command line bash actually builds,
not the script's text. Only ``python -m smollab.launch preflight`` runs for real (a recipe load).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smollab.errors import SmollabError
from smollab.launch import COMMITTED, Layout, check_world, launch, render, run_flag, stale_committed
from smollab.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "smollm2-135m.yaml")

FAKES = {
    # each writes one argument per line into $FAKE_LOG/<name>.args
    "torchrun": 'printf "%s\\n" "$@" > "$FAKE_LOG/torchrun.args"\n[ -z "${FAKE_SLEEP:-}" ] || sleep "$FAKE_SLEEP"\n',
    # srun records its argv, drops its own --options and runs the command on this host (one "node")
    "srun": 'printf "%s\\n" "$@" > "$FAKE_LOG/srun.args"\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n',
    # scontrol names the job's nodes, and so many of them that `head -n1` closes the pipe before it is done
    "scontrol": ('if [ "$1 $2" = "show hostnames" ]; then printf "gpu-017\\ngpu-018\\n"; seq -f "gpu-%05g" 100000; '
                 'else echo "$@" >> "$FAKE_LOG/scontrol.log"; fi\n'),
}


@pytest.fixture
def fakes(tmp_path) -> dict:
    """The environment of a script run: fake tools first on PATH, then this venv's python, then Slurm's variables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text("#!/usr/bin/env bash\nset -eu\n" + body)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "FAKE_LOG": str(tmp_path), "OMP_NUM_THREADS": "1",
            "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu-[017-018]", "SLURM_JOB_ID": "4242"}


def args(tmp_path: Path, name: str) -> list[str]:
    return (tmp_path / f"{name}.args").read_text().splitlines()


def test_committed_scripts_equal_a_fresh_render():
    assert stale_committed() == [], "launch/ is out of date; regenerate it: python -m smollab.launch regenerate"


@pytest.mark.parametrize("path", sorted(COMMITTED))
def test_bash_parses_the_committed_scripts(path):
    result = subprocess.run(["bash", "-n", str(REPO / path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_torchrun_script_runs_torchrun_with_the_recipe_and_resume(tmp_path, fakes):
    out = tmp_path / "run"
    (out / "checkpoints" / "step-2000").mkdir(parents=True)
    result = subprocess.run(["bash", str(REPO / "launch/torchrun.sh"), RECIPE, f"out={out}"], env=fakes,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert args(tmp_path, "torchrun") == ["--standalone", "--nnodes", "1", "--nproc_per_node", "8",
                                          "-m", "smollab", "train", RECIPE, f"out={out}", "--resume"]


def test_torchrun_script_refuses_a_rank_count_that_does_not_divide_before_starting_torchrun(tmp_path, fakes):
    result = subprocess.run(["bash", str(REPO / "launch/torchrun.sh"), RECIPE, f"out={tmp_path}/run", "batch.micro_batch=32"],
                            env=fakes, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert not (tmp_path / "torchrun.args").exists()
    [line] = result.stderr.strip().splitlines()
    assert "not divisible by seq_len × micro_batch × ranks = 8192 × 32 × 8 (stage long-context)" in line
    assert "set batch.micro_batch=16" in line


def test_slurm_script_for_two_nodes_runs_one_torchrun_per_node_joined_by_c10d(tmp_path, fakes, capsys):
    script = tmp_path / "135m.sbatch"
    launch(RECIPE, [f"out={tmp_path}/run"], nodes=2, gpus_per_node=8, scheduler="slurm", write=script)
    assert "wrote" in capsys.readouterr().err
    text = script.read_text()
    for line in ("#SBATCH --job-name=smollm2-135m", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --gpus-per-node=8", f"#SBATCH --output={tmp_path}/run/slurm-%j.out", "#SBATCH --requeue"):
        assert line + "\n" in text
    result = subprocess.run(["bash", str(script), RECIPE, "optim.lr=1e-3"], env=fakes, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    torchrun = ["torchrun", "--nnodes", "2", "--nproc_per_node", "8", "--rdzv_backend", "c10d",
                "--rdzv_endpoint", "gpu-017:29500", "--rdzv_id", "4242",
                "-m", "smollab", "train", RECIPE, f"out={tmp_path}/run", "optim.lr=1e-3"]  # a fresh run: no flag
    assert args(tmp_path, "srun") == ["--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1", *torchrun]
    assert args(tmp_path, "torchrun") == torchrun[1:]


def test_slurm_script_requeues_itself_when_slurm_signals_the_time_limit(tmp_path, fakes):
    (tmp_path / "run" / "checkpoints" / "step-10").mkdir(parents=True)
    process = subprocess.Popen(["bash", str(REPO / "launch/slurm.sbatch"), RECIPE, f"out={tmp_path}/run"],
                               env={**fakes, "FAKE_SLEEP": "30"}, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "torchrun.args").exists():  # the trap is set before srun starts
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        assert args(tmp_path, "torchrun")[-1] == "--resume"
        process.send_signal(signal.SIGUSR1)
        process.wait(timeout=10)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the fake torchrun still sleeping in the background
        process.wait()
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"


def test_run_flag_resumes_a_checkpoint_restarts_a_log_and_starts_a_fresh_directory(tmp_path):
    recipe = load_recipe(RECIPE, [f"out={tmp_path}"])
    assert run_flag(recipe) == ""
    (tmp_path / "checkpoints" / ".tmp-step-4").mkdir(parents=True)  # an interrupted write is no checkpoint
    (tmp_path / "log.jsonl").write_text('{"step": 0}\n')
    assert run_flag(recipe) == "--overwrite"
    (tmp_path / "checkpoints" / "step-4").mkdir()
    assert run_flag(recipe) == "--resume"


def test_rank_counts_are_checked_against_every_stage():
    recipe = load_recipe(RECIPE)
    check_world(recipe, 16)  # 1,048,576 = 8192 × 8 × 16
    with pytest.raises(SmollabError, match=r"8192 × 8 × 64 \(stage long-context\); set batch.micro_batch=2"):
        check_world(recipe, 64)  # the paper's 64 GPUs need a smaller micro-batch for the 8k stage
    with pytest.raises(SmollabError, match="no micro_batch fits 128 ranks"):
        check_world(load_recipe(REPO / "recipes" / "smollm2-360m.yaml"), 128)  # 1,572,864 / (8192 × 128) = 1.5
    with pytest.raises(SmollabError, match="8192 × 8 × 64"):
        launch(RECIPE, nodes=8, gpus_per_node=8, scheduler="slurm")


def test_launch_prints_the_script_and_refuses_torchrun_over_several_nodes(capsys):
    launch(RECIPE)
    assert capsys.readouterr().out == render(RECIPE, load_recipe(RECIPE), Layout("torchrun", 1, 8))
    with pytest.raises(SmollabError, match="use --scheduler slurm"):
        launch(RECIPE, nodes=2)
