"""`stackgen parallel ...`: the command line of the session side, mounted by
the module's `stackgen` (stackgen.user.cli)."""

from __future__ import annotations

import argparse

from stackgen.common.cliparts import command, common_options, json_option


def add_parallel(sub) -> None:
    from stackgen.session import commands as sc

    top = sub.add_parser(
        "parallel", help="ipyparallel and dask.distributed on your job's nodes",
        description="Start, show and stop parallel contexts on the current Slurm allocation "
                    "(or on this host outside Slurm): an ipyparallel controller here and engines "
                    "on every node, a dask scheduler here and workers on every node. "
                    "ipyparallel.Client() and dask.distributed.Client() in this session's "
                    "notebooks then connect with no arguments.",
        epilog="example:\n  module load jupyterlab\n  stackgen parallel start ipyparallel --mpi "
               "--procs-per-node 2\n  stackgen parallel status\n  stackgen parallel stop",
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common_options()])
    inner = top.add_subparsers(dest="parallel_command", metavar="COMMAND", required=True)

    start = inner.add_parser("start", help="start a context and wait until it is ready")
    kinds = start.add_subparsers(dest="kind", metavar="KIND", required=True)
    p = command(kinds, "ipyparallel", "an ipyparallel controller on this node and engines on "
                "every node of the job (srun), ready when all engines registered",
                "stackgen parallel start ipyparallel --mpi --procs-per-node 2\n"
                "python -c 'import ipyparallel as ipp; print(ipp.Client().ids)'", sc.start)
    p.add_argument("--mpi", action="store_true",
                   help="engines in one MPI world (srun --mpi=<site plugin>); engine id = MPI rank")
    p.add_argument("--procs-per-node", type=int, metavar="N",
                   help="engines per node (default: the node's CPUs in the job)")
    _common(p)
    p = command(kinds, "dask", "a dask scheduler on this node and workers on every node of the "
                "job (srun), ready when all workers registered",
                "stackgen parallel start dask --tasks-per-node 1 --threads-per-task 2\n"
                "python -c 'from dask.distributed import Client; print(Client())'", sc.start)
    p.add_argument("--tasks-per-node", type=int, default=1, metavar="N",
                   help="worker processes per node (default 1)")
    p.add_argument("--threads-per-task", type=int, metavar="N",
                   help="threads per worker (default: the node's CPUs shared by its workers)")
    p.add_argument("--port", type=int, metavar="PORT",
                   help="scheduler port, used or fails (default: the port published for the session, "
                   "else a free one; another if it is taken meanwhile)")
    p.add_argument("--dashboard-port", type=int, metavar="PORT",
                   help="dashboard port on this node (default: the session's, chosen once)")
    _common(p)

    p = command(inner, "status", "the contexts of this session, their state and logs",
                "stackgen parallel status --json", sc.status)
    json_option(p)
    p = command(inner, "stop", "stop a context (default: all), every process it started on every node",
                "stackgen parallel stop dask\nstackgen parallel stop", sc.stop)
    p.add_argument("name", nargs="?", choices=["ipyparallel", "dask"], help="the context (default: all)")
    json_option(p)
    command(inner, "env", "shell lines pointing a shell at this session (outside the lab)",
            "eval \"$(stackgen parallel env)\"", sc.env)
    p = command(inner, "run", "run the single-user server as this session: start the contexts "
                "the spawner asked for (STACKGEN_IPYPARALLEL, STACKGEN_DASK, ...), stop them all "
                "when it ends (what stackgen-singleuser runs)",
                "STACKGEN_DASK=1 stackgen parallel run -- jupyterhub-singleuser", sc.run_server)
    p.add_argument("command", nargs=argparse.REMAINDER, help="the server and its arguments, after --")


def _common(p) -> None:
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="how long to wait for registration (default: the site's, 120)")
    p.add_argument("--address", metavar="IP",
                   help="listen on this address (default: this node's, or the site's interface)")
    json_option(p)
