"""The hub's batch job as sbatch reads it, on the two-node test cluster: the
script the generated configuration writes, submitted the way batchspawner
does (`sudo -E -u USER sbatch --parsable`, the launcher's variables in the
environment only): the nodes asked for, whole, the quoted folder, the
variables in the job. The launcher is a stand-in that reports what it got."""

from __future__ import annotations

import os
import shlex
import subprocess

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


def test_the_hubs_job_is_read_by_sbatch_as_written(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster makes network namespaces: root only")
    if missing_packages():
        pytest.fail(f"the Slurm test cluster needs {' '.join(missing_packages())}: ./bootstrap env")
    user = ensure_user()
    with SlurmCluster() as cluster:
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
    assert cluster.leftovers() == []
