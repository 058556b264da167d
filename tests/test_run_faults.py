"""What stackgen starts ends with it: a command run through the funnel is
killed when stackgen is, even by SIGKILL, and the scratch folder a killed
run left is removed by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stackgen.common.fsutil import scratch_folder

from conftest import REPO

RUNS_A_SLEEPER = """
from stackgen.common.run import run
run(["sleep", "300"], describe="a long resolver")
"""


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except FileNotFoundError:
        return b""


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_a_command_ends_when_stackgen_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", RUNS_A_SLEEPER], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        # until the child has exec'd: between fork and exec it is still python
        assert wait_until(lambda: [c for c in children(parent.pid) if command(c) == b"sleep"]), \
            "the command did not start"
        (child,) = children(parent.pid)
        assert command(child) == b"sleep"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: gone(child)), "the command outlived stackgen"
    finally:
        parent.kill()


def test_a_scratch_folder_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"lock-{dead.pid}-abcd"
    left.mkdir()
    (left / "resolver-output.txt").write_text("half")
    alive = tmp_path / "lock-1-efgh"          # pid 1 always runs: not ours to remove
    alive.mkdir()
    with scratch_folder(tmp_path, "lock-") as mine:
        assert mine.name.startswith(f"lock-{os.getpid()}-") and mine.is_dir()
        assert not left.exists() and alive.exists()
    assert not mine.exists()
