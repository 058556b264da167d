"""The spawner's choices, as the single-user launcher reads them from its
environment (documented in the README): which contexts to start with the
server and how. Pure: parsing and the start commands it leads to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stackgen.common.errors import InputError

IPYPARALLEL = "STACKGEN_IPYPARALLEL"                          # 1: start ipyparallel with the server
IPYPARALLEL_MPI = "STACKGEN_IPYPARALLEL_MPI"                  # 1: engines in MPI (rank = engine id)
IPYPARALLEL_PROCS = "STACKGEN_IPYPARALLEL_PROCS_PER_NODE"     # engines per node (default: its CPUs)
DASK = "STACKGEN_DASK"                                        # 1: start dask.distributed with the server
DASK_TASKS = "STACKGEN_DASK_TASKS_PER_NODE"                   # workers per node (default 1)
DASK_THREADS = "STACKGEN_DASK_THREADS_PER_TASK"               # threads per worker (default: CPUs / tasks)
VARIABLES = (IPYPARALLEL, IPYPARALLEL_MPI, IPYPARALLEL_PROCS, DASK, DASK_TASKS, DASK_THREADS)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(f"{name}={env[name]!r}: expected 1 or 0 (true/false, yes/no)")


def count(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{name}={env[name]!r}: expected a whole number of at least 1")
    return int(value)


@dataclass(frozen=True)
class Choice:
    name: str              # the context: "ipyparallel" or "dask"
    args: tuple[str, ...]  # its `stackgen parallel start` arguments


def choices(env: Mapping[str, str]) -> tuple[list[Choice], list[str]]:
    """The contexts to start, and the problems found (each context is read alone,
    so a bad dask variable does not stop ipyparallel from starting)."""
    found, problems = [], []
    try:
        if flag(env, IPYPARALLEL):
            args = ["ipyparallel"] + (["--mpi"] if flag(env, IPYPARALLEL_MPI) else [])
            procs = count(env, IPYPARALLEL_PROCS)
            args += ["--procs-per-node", str(procs)] if procs else []
            found.append(Choice("ipyparallel", tuple(args)))
    except InputError as exc:
        problems.append(exc.message)
    try:
        if flag(env, DASK):
            tasks, threads = count(env, DASK_TASKS), count(env, DASK_THREADS)
            args = ["dask"] + (["--tasks-per-node", str(tasks)] if tasks else []) + \
                (["--threads-per-task", str(threads)] if threads else [])
            found.append(Choice("dask", tuple(args)))
    except InputError as exc:
        problems.append(exc.message)
    return found, problems
