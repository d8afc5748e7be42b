"""Real `accelerate launch` runs of 2 CPU processes (gloo) with the shipped accelerate_configs/ddp.yaml,
for the multi-process tests: one to wait for (`launch`), or one to kill (`start_launch`, `kill_launch`).

A script run this way finds tests/ (tiny.py) and src/ on its path, one thread per process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 2


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def launch_command(script: Path, *arguments: str) -> list[str]:
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_configs" / "ddp.yaml"),
        "--num_processes", str(PROCESSES), "--mixed_precision", "no", "--main_process_port", str(free_port()),
        str(script), *arguments,
    ]


def launch_environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", **extra,
    }


def launch(script: Path, *arguments: str, check: bool = True, **environment: str) -> subprocess.CompletedProcess:
    """Run `script` on 2 processes to its end; with `check`, it must succeed."""
    result = subprocess.run(launch_command(script, *arguments), env=launch_environment(**environment), capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def start_launch(script: Path, output: Path, *arguments: str) -> subprocess.Popen:
    """Start `script` on 2 processes in the background, its output into the file `output` (a pipe
    nobody reads would fill up and stall the run)."""
    with open(output, "w") as handle:
        return subprocess.Popen(launch_command(script, *arguments), env=launch_environment(), stdout=handle,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def kill_launch(launcher: subprocess.Popen, rank_pids: list[int], script: Path) -> None:
    """SIGKILL the launcher and its ranks (the processes in `rank_pids` that run `script`) at once.
    torchrun starts each rank in a session of its own, so killing the launcher's process group
    alone would leave the ranks running."""
    ranks = [pid for pid in rank_pids if _runs(pid, script)]
    for group in [*ranks, launcher.pid]:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launcher.wait(timeout=60)
    for pid in ranks:
        wait_until_gone(pid)


def _runs(pid: int, script: Path) -> bool:
    """Whether process `pid` runs `script` (and leads its own process group): never kill a
    stranger that got a recycled process id."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return str(script).encode() in command_line and os.getpgid(pid) == pid
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until_gone(pid: int, timeout: float = 60.0) -> None:
    """Wait until process `pid` is dead (gone, or a zombie that its new parent has yet to reap)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return
        if state in ("Z", "X"):
            return
        assert time.monotonic() < deadline, f"process {pid} still runs after SIGKILL"
        time.sleep(0.05)
