"""What a start command asks for, checked and laid out on the allocation:
pure, so the argument building is tested without a cluster."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.errors import InputError
from stackgen.session.allocation import Allocation

IPP_STEP = "stackgen-ipengines"
DASK_STEP = "stackgen-dask-workers"


@dataclass(frozen=True)
class IppRequest:
    procs_per_node: int | None = None    # None: one per CPU of a node
    mpi: bool = False


@dataclass(frozen=True)
class DaskRequest:
    tasks_per_node: int = 1
    threads_per_task: int | None = None  # None: the node's CPUs shared by its tasks


@dataclass(frozen=True)
class Options:
    """The site's defaults (stack.yaml's parallel section), as the module gives them."""

    start_timeout: float = 120.0
    stop_timeout: float = 10.0
    interface: str = ""
    mpi_plugin: str = "pmix"
    partition: str = ""
    account: str = ""
    time_limit: str = ""
    cores: int = 0
    memory: str = ""


def positive(value: int | None, what: str) -> None:
    if value is not None and value < 1:
        raise InputError(f"{what} must be at least 1, not {value}")


def per_node(alloc: Allocation, count: int) -> dict[str, int]:
    return {node: count for node in alloc.nodes}


def ipp_per_node(alloc: Allocation, request: IppRequest) -> dict[str, int]:
    positive(request.procs_per_node, "--procs-per-node")
    return per_node(alloc, request.procs_per_node or alloc.cpus_per_node)


def dask_threads(alloc: Allocation, request: DaskRequest) -> int:
    positive(request.tasks_per_node, "--tasks-per-node")
    positive(request.threads_per_task, "--threads-per-task")
    return request.threads_per_task or max(1, alloc.cpus_per_node // request.tasks_per_node)


def srun_prefix(alloc: Allocation, per_task: int, step: str, logs: Path, kind: str,
                mpi: str = "none") -> list[str]:
    """`srun` for one task set across the whole allocation, as a step beside
    the server's (--overlap), its output one file per node and task. Every
    count is explicit: inside the server's own step, srun would otherwise take
    that step's SLURM_NTASKS (one task) from the environment."""
    return ["srun", "--overlap", f"--mpi={mpi}", f"--nodes={len(alloc.nodes)}",
            f"--ntasks={len(alloc.nodes) * per_task}", f"--ntasks-per-node={per_task}",
            f"--job-name={step}", "--kill-on-bad-exit=0",
            f"--output={logs / f'{kind}-%N-%t.log'}"]


def task_log(logs: Path, kind: str, node: str) -> str:
    """How a node's task logs are named (srun's %N-%t), for messages."""
    return str(logs / f"{kind}-{node}-*.log")


def scheduler_argv(python: str, scheduler_file: Path, address: str, port: int,
                   dashboard_port: int, interface: str = "") -> list[str]:
    # The dashboard listens on the node itself only: users reach it through
    # jupyter-server-proxy (/proxy/PORT/status), behind the hub's login.
    argv = [python, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(scheduler_file),
            "--port", str(port), "--dashboard-address", f"127.0.0.1:{dashboard_port}"]
    return argv + (["--interface", interface] if interface else ["--host", address])


def worker_argv(python: str, scheduler_file: Path, threads: int, local_dir: str,
                workers: int = 1, interface: str = "") -> list[str]:
    argv = [python, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
            "--nthreads", str(threads), "--nworkers", str(workers), "--no-dashboard",
            "--local-directory", local_dir]
    return argv + (["--interface", interface] if interface else [])


def shown(argv: list[str]) -> str:
    return shlex.join(argv)


DEFAULTS_VARIABLE = "STACKGEN_PARALLEL_DEFAULTS"   # the module's JSON file of stack.yaml's parallel section


def options_from(env: dict[str, str]) -> Options:
    """The site's defaults from the file the module names, else the built-in ones."""
    import dataclasses
    import json
    path = env.get(DEFAULTS_VARIABLE)
    data = json.loads(Path(path).read_text()) if path and Path(path).is_file() else {}
    known = {f.name for f in dataclasses.fields(Options)}
    return Options(**{k: v for k, v in data.items() if k in known})
