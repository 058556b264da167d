"""The warning before a job's time limit (sbatch --signal=B:USR1@N from the
hub's batch script): the launcher says in the server's log when the job
ends, and neither it nor the server dies of the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

from stackgen.session import endwarning

# the server: says how it treats the warning signal, then runs until TERM
SERVER = ("import signal, sys, time\n"
          "print('usr1', signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN, flush=True)\n"
          "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
          "while True: time.sleep(0.1)\n")


def test_the_line_says_when_the_job_ends():
    end = datetime(2026, 12, 4, 13, 5, 0)
    line = endwarning.warning_line("42", end, datetime(2026, 12, 4, 13, 0, 10))
    assert line == ("Slurm warns that job 42 reaches its time limit at 2026-12-04 13:05:00 "
                    "(in about 5 min): save your work; the server keeps running until then")
    assert "reaches its time limit soon" in endwarning.warning_line(None, None, end)


def test_the_end_is_slurms_own(tmp_path, monkeypatch):
    squeue = tmp_path / "squeue"
    squeue.write_text('#!/bin/sh\n[ "$*" = "-h -j 42 -o %e" ] && echo 2026-12-04T13:05:00\n')
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert endwarning.job_end("42") == datetime(2026, 12, 4, 13, 5, 0)
    assert endwarning.job_end("43") is None
    assert endwarning.parse_end("Unknown\n") is None


def test_the_launcher_logs_the_warning_and_keeps_the_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "STACKGEN_"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"))
    keeper = subprocess.Popen([sys.executable, "-m", "stackgen.user.cli", "parallel", "run", "--",
                               sys.executable, "-c", SERVER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout.readline() == "usr1 True\n"      # started with it ignored
        keeper.send_signal(signal.SIGUSR1)
        for line in keeper.stderr:
            if "Slurm warns" in line:
                break
        assert "reaches its time limit soon: save your work" in line
        time.sleep(0.5)
        assert keeper.poll() is None                          # both still running
        keeper.send_signal(signal.SIGTERM)                    # passed on to the server
        assert keeper.wait(timeout=60) == 0
    finally:
        if keeper.poll() is None:
            keeper.kill()
            keeper.wait()


def test_a_slow_squeue_holds_up_neither_the_server_nor_its_end(tmp_path):
    """The warning's squeue runs beside the launcher's work: a TERM that comes
    while squeue is still answering reaches the server, and the launcher
    ends with it, before squeue has answered."""
    squeue = tmp_path / "bin" / "squeue"
    squeue.parent.mkdir()
    squeue.write_text(f'#!/bin/sh\ntouch {tmp_path}/asked\nsleep 8\ntouch {tmp_path}/answered\n'
                      'echo 2026-12-04T13:05:00\n')
    squeue.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "STACKGEN_"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), SLURM_JOB_ID="42",
               PATH=f"{squeue.parent}{os.pathsep}{os.environ['PATH']}",
               STACKGEN_SESSION_DIR=str(tmp_path / "session"))
    keeper = subprocess.Popen([sys.executable, "-m", "stackgen.user.cli", "parallel", "run", "--",
                               sys.executable, "-c", SERVER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout.readline() == "usr1 True\n"
        keeper.send_signal(signal.SIGUSR1)
        while not (tmp_path / "asked").exists():
            assert keeper.poll() is None, keeper.stderr.read()
            time.sleep(0.05)
        keeper.send_signal(signal.SIGTERM)
        assert keeper.wait(timeout=60) == 0, keeper.stderr.read()
        assert not (tmp_path / "answered").exists()      # it ended while squeue was still asked
    finally:
        if keeper.poll() is None:
            keeper.kill()
