"""The hub's job on the two-node test cluster. The batch script the generated
configuration writes, submitted as batchspawner does (`sudo -E -u USER
sbatch --parsable`, the launcher's variables in the environment only), is
read by sbatch as written: the nodes asked for, whole, the quoted folder, the
variables in the job (the launcher a stand-in that reports what it got).
And Slurm's warning before the time limit (--signal=B:USR1@N, the launcher
exec'd as the batch process): the launcher logs when the job ends, and the
server, which takes the signal over as jupyter_server does, is not signalled
itself (B: reaches the batch process alone) and keeps running."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import pytest

from stackgen.site.hubform import answers, batch_script, launcher_env

from e2e import ensure_user
from slurmcluster import SlurmCluster, missing_packages

pytestmark = pytest.mark.slurm

SITE = {"partitions": [{"name": "test", "description": "", "partition": "", "constraint": "",
                        "cores": 2, "min_nodes": 1, "max_nodes": 2, "default_nodes": 1,
                        "max_time": "02:00:00", "default_time": "01:00:00"}],
        "reservations": [], "accounts": [], "time_warning": 300, "ipyparallel": False,
        "dask": False, "dask_tasks_per_node": 1}

REPORT = ("#!/bin/bash\n"
          'echo "args: $*"\n'
          'echo "pwd: $PWD"\n'
          'echo "nodes: $SLURM_JOB_NUM_NODES cpus: $SLURM_JOB_CPUS_PER_NODE"\n'
          "env | grep ^STACKGEN_ | sort\n")

SERVER = ("import signal, time\n"
          "signal.signal(signal.SIGUSR1, lambda *a: print('server got USR1', flush=True))\n"
          "print('server up', flush=True)\n"
          "while True: time.sleep(0.2)\n")


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster makes network namespaces: root only")
    if missing_packages():
        pytest.fail(f"the Slurm test cluster needs {' '.join(missing_packages())}: ./bootstrap env")
    with SlurmCluster() as made:
        yield made
    assert made.leftovers() == []


def test_the_hubs_job_is_read_by_sbatch_as_written(cluster):
    user = ensure_user()
    home = cluster.scratch / "a home #1"          # a space and a '#': quoted for sbatch
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    launcher = cluster.scratch / "launcher"
    launcher.write_text(REPORT)
    launcher.chmod(0o755)
    chosen = answers(SITE, {"partition": ["test"], "nodes": ["2"], "time": ["00:30:00"],
                            "ipyparallel": ["mpi"], "ipyparallel_procs_per_node": ["2"],
                            "dask": ["on"], "dask_tasks_per_node": ["1"]})
    script = batch_script(SITE, chosen, str(home), shlex.join(
        [str(launcher), "--", "batchspawner-singleuser", "jupyterhub-singleuser"]))
    env = {**cluster.env, **launcher_env(chosen)}
    submitted = subprocess.run(f"sudo -E -u {user.pw_name} sbatch --parsable", shell=True, env=env,
                               input=script, capture_output=True, text=True, check=True)
    job = submitted.stdout.strip().split(";")[0]
    assert cluster.wait_for_job(job) == "COMPLETED"
    text = (home / f"jupyterhub_slurmspawner_{job}.log").read_text()
    assert text.splitlines() == [
        "args: -- batchspawner-singleuser jupyterhub-singleuser",
        f"pwd: {home}",
        "nodes: 2 cpus: 2(x2)",
        "STACKGEN_DASK=1", "STACKGEN_DASK_TASKS_PER_NODE=1", "STACKGEN_IPYPARALLEL=1",
        "STACKGEN_IPYPARALLEL_MPI=1", "STACKGEN_IPYPARALLEL_PROCS_PER_NODE=2"], text


def test_a_job_near_its_time_limit_logs_the_warning_and_keeps_running(cluster):
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
