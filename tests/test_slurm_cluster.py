"""The two-node Slurm test cluster is a cluster: one task per node, each
node with its own address and /tmp, batch jobs with steps, MPI between the
nodes, jobs of an ordinary user, and nothing left behind."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import pytest

from e2e import ensure_user
from slurmcluster import SlurmCluster

pytestmark = pytest.mark.slurm

# What Debian's Open MPI asks of root before it starts a rank.
AS_ROOT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def by_task(output: str) -> dict[int, str]:
    """`srun -l` output as {task: its line}."""
    tasks = {}
    for line in output.splitlines():
        task, _, text = line.partition(": ")
        tasks[int(task)] = text
    return tasks


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_one_task_per_node_each_on_its_own_address(slurm_cluster):
    result = slurm_cluster.run(["srun", "-N2", "-n2", "-l", "sh", "-c",
                                'echo "$SLURMD_NODENAME $(hostname) $(ip -4 -o addr show eth0)"'])
    seen = {}
    for text in by_task(result.stdout).values():
        node, hostname, address = re.match(r"(\S+) (\S+) .* inet ([\d.]+)/", text).groups()
        assert hostname == node
        seen[node] = address
    assert seen == {node.name: node.address for node in slurm_cluster.nodes}


def test_batch_job_with_a_step_inside(slurm_cluster):
    out = slurm_cluster.scratch / f"batch-{secrets.token_hex(3)}.out"
    script = f"#!/bin/sh\n#SBATCH -N2 -n2 -o {out}\nsrun --overlap -l hostname\n"
    job = slurm_cluster.run(["sbatch", "--parsable"], input=script).stdout.strip()
    assert slurm_cluster.wait_for_job(job) == "COMPLETED"
    assert sorted(by_task(out.read_text()).values()) == ["n1", "n2"]


def test_each_node_has_its_own_tmp(slurm_cluster):
    path = f"/tmp/stackgen-slurm-test-{secrets.token_hex(3)}"
    slurm_cluster.run(["srun", "-w", "n1", "touch", path])
    slurm_cluster.run(["srun", "-w", "n1", "test", "-e", path])
    assert slurm_cluster.run(["srun", "-w", "n2", "test", "-e", path], check=False).returncode != 0
    assert not Path(path).exists()


def test_mpi_ranks_on_both_nodes_reduce_together(slurm_cluster, repo):
    python = repo / ".standin" / "cray-python-3.11" / "bin" / "python"
    assert python.exists(), "the base stand-in (mpi4py) is missing: run ./bootstrap env"
    code = ("import json, os; from mpi4py import MPI; world = MPI.COMM_WORLD; "
            "print(json.dumps([world.rank, os.environ['SLURMD_NODENAME'], "
            "world.allreduce(world.rank + 1)]))")
    result = slurm_cluster.run(["srun", "-N2", "-n2", "--mpi=pmix", str(python), "-c", code],
                               env=AS_ROOT)
    ranks = sorted(json.loads(line) for line in result.stdout.splitlines())
    assert ranks == [[0, "n1", 3], [1, "n2", 3]]


def test_an_ordinary_user_runs_tasks(slurm_cluster):
    user = ensure_user().pw_name
    result = slurm_cluster.run(["srun", "-N2", "-n2", "id", "-un"], user=user)
    assert result.stdout.split() == [user, user]


def test_a_second_cluster_beside_the_first_leaves_nothing(slurm_cluster, tmp_path):
    with SlurmCluster(shared=(tmp_path,)) as other:
        assert other.bridge != slurm_cluster.bridge
        assert other.controller_address != slurm_cluster.controller_address
        # a folder under /tmp given as shared is the host's on every node
        other.run(["srun", "-w", "n2", "touch", str(tmp_path / "from-n2")])
        assert (tmp_path / "from-n2").exists()
        # a job still running when the cluster stops is ended with it
        job = other.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "srun sleep 600"]).stdout.strip()
        wait_until(lambda: f"{job}.0" in other.run(["squeue", "-h", "-s", "-o", "%i"]).stdout)
    assert other.leftovers() == []
    slurm_cluster.run(["srun", "-N2", "true"])
