"""Parallel contexts on the two-node Slurm test cluster, as an ordinary
user, on the session-built stack: the single-user launcher in a 2-node job
with both contexts requested, MPI ranks across both nodes, no-argument
clients; a request the allocation cannot meet; a controller bound to
localhost; the end of the job leaving nothing behind."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pytest

from e2e import ensure_user
from parallel_e2e import client_cell, context_processes, last_json, states_report, wait_no_context_processes
from slurmcluster import SlurmCluster, missing_packages

pytestmark = [pytest.mark.slow, pytest.mark.lmod, pytest.mark.slurm]


@pytest.fixture(scope="module")
def cluster(built_stack):
    """The project's two-node test cluster, with the built stack (under /tmp,
    which each node has its own of) shared with the nodes."""
    import os
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster makes network namespaces: root only")
    if missing_packages():
        pytest.fail(f"the Slurm test cluster needs {' '.join(missing_packages())}: ./bootstrap env")
    with SlurmCluster(shared=(built_stack.root,)) as made:
        yield made
    assert made.leftovers() == []


@pytest.fixture(scope="module")
def user():
    return ensure_user()


def launcher(built) -> str:
    return str(built.prefix / "software" / "jupyterlab" / "2026.11" / "bin" / "stackgen-singleuser")


def submit(cluster, user, body: str, nodes: int = 2, per_node: int = 2) -> tuple[str, Path]:
    out = cluster.scratch / f"job-{secrets.token_hex(4)}.out"
    script = (f"#!/bin/bash -l\n#SBATCH -N{nodes} --ntasks-per-node={per_node} -o {out}\n"
              "export OMPI_MCA_btl_tcp_if_include=eth0\n" + body)
    job = cluster.run(["sbatch", "--parsable"], user=user.pw_name, input=script).stdout.strip()
    return job, out


def in_job_python(cluster, code: str) -> str:
    path = cluster.scratch / f"client-{secrets.token_hex(4)}.py"
    path.write_text(code)
    path.chmod(0o644)
    return str(path)


def test_a_two_node_job_runs_both_contexts_from_the_launcher(built_stack, cluster, user):
    client = in_job_python(cluster, client_cell(("ipyparallel", "dask"), mpi=True))
    job, out = submit(cluster, user, (
        "export STACKGEN_IPYPARALLEL=1 STACKGEN_IPYPARALLEL_MPI=1 STACKGEN_IPYPARALLEL_PROCS_PER_NODE=2\n"
        "export STACKGEN_DASK=1 STACKGEN_DASK_TASKS_PER_NODE=1 STACKGEN_DASK_THREADS_PER_TASK=1\n"
        f"srun --overlap -N1 -n1 {launcher(built_stack)} -- python3 {client}\n"))
    final = cluster.wait_for_job(job, timeout=600)
    text = out.read_text()
    assert final == "COMPLETED", text[-5000:]
    result = last_json(text)
    assert result["states"] == {"ipyparallel": "ready", "dask": "ready"}, states_report(result)
    assert result["session"] == session_of(cluster, user, job)
    assert result["ids"] == [0, 1, 2, 3]
    assert result["engines"] == ["n1", "n1", "n2", "n2"]
    assert result["mpi"] == [[0, 10], [1, 10], [2, 10], [3, 10]]
    assert result["workers"] == ["n1", "n2"] and result["sum"] == 160000.0
    assert "ipyparallel: stopped" in text and "dask: stopped" in text
    assert wait_no_context_processes(result["session"]) == []


def start_in_job(built, cluster, user, args: str, then: str = "", after: str = "") -> tuple[str, Path]:
    prefix = built.prefix / "modules" / "all"
    return submit(cluster, user, (
        f"module use {prefix} && module load jupyterlab\n"
        f"stackgen parallel start {args}\necho start-exit=$?\n{then}"
        f"stackgen parallel status\nstackgen parallel stop\n{after}"))


def session_of(cluster, user, job: str) -> str:
    return f"{user.pw_dir}/.local/state/stackgen/sessions/slurm-sg{cluster.suffix}-{job}"


def test_more_engines_than_the_allocation_fails_naming_what_did_not_start(built_stack, cluster, user):
    job, out = start_in_job(built_stack, cluster, user, "ipyparallel --procs-per-node 3 --timeout 60")
    cluster.wait_for_job(job, timeout=300)
    text = out.read_text()
    assert "start-exit=1" in text, text[-3000:]
    assert re.search(r"n1: 0 of 3 engines \(log: \S+/ipengine-n1-\*\.log", text), text[-3000:]
    assert "n2: 0 of 3 engines" in text
    assert "it said: " in text and "srun: error" in text   # srun's own reason
    assert "ipyparallel: failed" in text     # `status` after the failure still tells why
    assert wait_no_context_processes(session_of(cluster, user, job)) == []


def test_a_controller_on_localhost_leaves_the_second_nodes_engines_out(built_stack, cluster, user):
    job, out = start_in_job(built_stack, cluster, user,
                            "ipyparallel --procs-per-node 1 --address 127.0.0.1 --timeout 30")
    cluster.wait_for_job(job, timeout=300)
    text = out.read_text()
    assert "start-exit=1" in text, text[-3000:]
    assert "n2: 0 of 1 engines" in text and "n1: " not in text.split("n2: 0 of 1")[0].split("error:")[-1]
    assert wait_no_context_processes(session_of(cluster, user, job)) == []


def job_state(cluster, job: str) -> str:
    text = cluster.run(["scontrol", "show", "job", "-o", job], timeout=10).stdout
    return re.search(r"JobState=(\S+)", text).group(1)


def test_scancel_of_the_job_leaves_no_process_on_either_node(built_stack, cluster, user):
    # the server here: wait until both contexts are ready, say so, then stay
    server = in_job_python(cluster, client_cell(("ipyparallel", "dask")).replace(
        'print(json.dumps(out))', 'print("BOTH-READY", flush=True); time.sleep(600)'))
    job, out = submit(cluster, user, (
        "export STACKGEN_IPYPARALLEL=1 STACKGEN_IPYPARALLEL_PROCS_PER_NODE=1 STACKGEN_DASK=1\n"
        f"srun --overlap -N1 -n1 {launcher(built_stack)} -- python3 {server}\n"))
    deadline = time.monotonic() + 300
    while "BOTH-READY" not in (out.read_text() if out.exists() else ""):
        assert job_state(cluster, job) in ("PENDING", "CONFIGURING", "RUNNING"), \
            out.read_text() if out.exists() else "no output"
        assert time.monotonic() < deadline, out.read_text() if out.exists() else "no output"
        time.sleep(0.2)
    session = session_of(cluster, user, job)
    running = context_processes(session)
    assert len(running) >= 4, running   # controller, engines' srun, scheduler, workers' srun, tasks
    cluster.run(["scancel", job])
    assert cluster.wait_for_job(job, timeout=120) == "CANCELLED"
    assert wait_no_context_processes(session) == []


# A notebook's production run: engines as a separate batch job with the
# site's defaults (the session's profile), compute, stop.
BATCH_ENGINES = r"""
import json, os
import ipyparallel as ipp
cluster = ipp.Cluster(engines="slurm", n=2)
rc = cluster.start_and_connect_sync()
nodes = sorted(rc[:].apply_sync(lambda: __import__("os").environ["SLURMD_NODENAME"]))
jobs = sorted({j for j in rc[:].apply_sync(lambda: __import__("os").environ["SLURM_JOB_ID"])})
total = sum(rc[:].apply_sync(lambda: 21))
rc.close()
cluster.stop_cluster_sync()
print(json.dumps({"own": os.environ["SLURM_JOB_ID"], "jobs": jobs, "nodes": nodes, "total": total}))
"""


def assert_a_separate_job_computes_and_leaves(built_stack, cluster, user, script):
    """`script` run by the launcher in a one-node job of its own: it starts a
    second job (engines or workers) with the site's defaults, computes there
    and stops it; that second job then leaves the queue."""
    server = in_job_python(cluster, script)
    job, out = submit(cluster, user, f"srun --overlap -N1 -n1 {launcher(built_stack)} -- python3 {server}\n",
                      nodes=1, per_node=1)
    final = cluster.wait_for_job(job, timeout=600)
    text = out.read_text()
    assert final == "COMPLETED", text[-5000:]
    result = last_json(text)
    assert result["own"] == job and result["total"] == 42
    (other,) = result["jobs"]
    assert other != job
    assert cluster.wait_for_job(other, timeout=60) in ("CANCELLED", "COMPLETED")
    assert cluster.run(["squeue", "-h", "-j", other], check=False).stdout.strip() == ""


def test_engines_in_a_separate_batch_job_with_the_site_defaults(built_stack, cluster, user):
    assert_a_separate_job_computes_and_leaves(built_stack, cluster, user, BATCH_ENGINES)


# The same with dask-jobqueue: SLURMCluster() with no arguments (the site's
# jobqueue.slurm defaults, the session's scheduler host).
BATCH_WORKERS = r"""
import json, os
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(jobs=1)
client = Client(cluster)
client.wait_for_workers(1, timeout=300)
nodes = sorted(client.run(lambda: __import__("os").environ["SLURMD_NODENAME"]).values())
jobs = sorted(set(client.run(lambda: __import__("os").environ["SLURM_JOB_ID"]).values()))
total = client.submit(sum, [20, 22]).result()
client.close()
cluster.close()
print(json.dumps({"own": os.environ["SLURM_JOB_ID"], "jobs": jobs, "nodes": nodes, "total": total}))
"""


def test_dask_workers_in_a_separate_batch_job_with_the_site_defaults(built_stack, cluster, user):
    assert_a_separate_job_computes_and_leaves(built_stack, cluster, user, BATCH_WORKERS)


def test_stop_ends_every_process_on_both_nodes_while_the_job_runs_on(built_stack, cluster, user):
    job, out = start_in_job(built_stack, cluster, user, "dask --tasks-per-node 1 --threads-per-task 1",
                            then="stackgen parallel start ipyparallel --procs-per-node 1 --mpi\n",
                            after="echo STOPPED\nsleep 600\n")
    session = session_of(cluster, user, job)
    deadline = time.monotonic() + 300
    while "STOPPED" not in (out.read_text() if out.exists() else ""):
        assert job_state(cluster, job) in ("PENDING", "CONFIGURING", "RUNNING"), \
            out.read_text() if out.exists() else "no output"
        assert time.monotonic() < deadline, out.read_text() if out.exists() else "no output"
        time.sleep(0.2)
    text = out.read_text()
    assert "ipyparallel: ready" in text and "dask: ready" in text, text[-3000:]
    assert job_state(cluster, job) == "RUNNING"     # the job lives on: only stop ended them
    try:
        assert wait_no_context_processes(session) == []
    finally:
        cluster.run(["scancel", job])
