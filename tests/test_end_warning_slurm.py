"""Slurm's warning before the time limit, for real, on the two-node test
cluster: a job as the hub writes it (--signal=B:USR1@N, the launcher exec'd
as the batch process) gets the warning; the launcher logs when the job ends,
and the server, which takes the signal over as jupyter_server does, is not
signalled itself (B: reaches the batch process alone) and keeps running."""

from __future__ import annotations

import os
import sys
import time

import pytest

from slurmcluster import SlurmCluster, missing_packages

pytestmark = pytest.mark.slurm

SERVER = ("import signal, time\n"
          "signal.signal(signal.SIGUSR1, lambda *a: print('server got USR1', flush=True))\n"
          "print('server up', flush=True)\n"
          "while True: time.sleep(0.2)\n")


def test_a_job_near_its_time_limit_logs_the_warning_and_keeps_running(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster makes network namespaces: root only")
    if missing_packages():
        pytest.fail(f"the Slurm test cluster needs {' '.join(missing_packages())}: ./bootstrap env")
    with SlurmCluster() as cluster:
        out = cluster.scratch / "warned.out"
        server = cluster.scratch / "server.py"
        server.write_text(SERVER)
        # 2 minutes, warned 90 s before the end (Slurm may send it up to a minute early)
        script = (f"#!/bin/bash\n#SBATCH -N1 --time=2 --signal=B:USR1@90 -o {out}\n"
                  f"export HOME={cluster.scratch}\n"
                  f"exec {sys.executable} -m stackgen.user.cli parallel run -- python3 {server}\n")
        job = cluster.run(["sbatch", "--parsable"], input=script).stdout.strip()
        deadline = time.monotonic() + 110
        text = ""
        while "Slurm warns" not in text and time.monotonic() < deadline:
            time.sleep(1)
            text = out.read_text() if out.exists() else ""
        time.sleep(2)
        text = out.read_text()
        state = cluster.run(["squeue", "-h", "-j", job, "-o", "%T"]).stdout.strip()
        cluster.run(["scancel", job])
        assert f"Slurm warns that job {job} reaches its time limit at " in text, text
        assert "save your work; the server keeps running until then" in text
        assert "server up" in text and "server got USR1" not in text, text
        assert state == "RUNNING", text
        cluster.wait_for_job(job)
    assert cluster.leftovers() == []
