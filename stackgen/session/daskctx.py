"""The dask context: `dask scheduler --scheduler-file` here, listening on
this node's address, and `dask worker --scheduler-file` through `srun`
across the allocation (one local `dask worker` process outside Slurm).
Ready when every worker has registered with the scheduler."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from stackgen.common.errors import StackgenError
from stackgen.common.fsutil import write_atomic
from stackgen.session import procs, state
from stackgen.session.allocation import Allocation
from stackgen.session.place import Session
from stackgen.session.plan import (
    DASK_STEP,
    DaskRequest,
    Options,
    dask_threads,
    per_node,
    scheduler_argv,
    srun_prefix,
    task_log,
    worker_argv,
)
from stackgen.session.readiness import missing_message

NAME = "dask"


def marker(session: Session) -> str:
    return f"{session.root}#{NAME}"


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


# Where the session's server proxies the dashboard (jupyter-server-proxy), and
# so dask-labextension's defaultURL, relative to the server's base URL.
DASHBOARD_PATH = "stackgen-dask"


def session_dashboard_port(session: Session) -> int:
    """The session's dashboard port: the one chosen before, else a free one, kept."""
    try:
        return int(session.dashboard_port_file.read_text())
    except (FileNotFoundError, ValueError):
        port = free_port("127.0.0.1")
        write_atomic(session.dashboard_port_file, f"{port}\n", mode=0o600)
        return port


def proxy_config(port: int) -> dict:
    """jupyter-server-proxy's entry for the dashboard: no command (dask starts
    it), the session's port, its prefix stripped (the dashboard serves at /)."""
    return {"ServerProxy": {"servers": {DASHBOARD_PATH: {
        "port": port, "absolute_url": False, "launcher_entry": {"enabled": False}}}}}


def scheduler_file(session: Session):
    return session.root / "dask-scheduler.json"


def publish(session: Session, address: str) -> None:
    """Point dask.distributed.Client() of this session at `address` (dask
    config `scheduler-address`, in the session's DASK_CONFIG folder)."""
    write_atomic(session.dask_address_file, "# written by stackgen for this session\n"
                 + json.dumps({"scheduler-address": address}) + "\n", mode=0o600)


def unpublish(session: Session) -> None:
    session.dask_address_file.unlink(missing_ok=True)


def start(session: Session, alloc: Allocation, request: DaskRequest, options: Options,
          port: int = 0, dashboard_port: int = 0) -> state.Context:
    threads = dask_threads(alloc, request)
    port = port or free_port(alloc.address)
    dashboard_port = dashboard_port or session_dashboard_port(session)
    sfile = scheduler_file(session)
    sfile.unlink(missing_ok=True)
    address = f"tcp://{alloc.address}:{port}"
    publish(session, address)
    context = state.Context(NAME, "starting", address=address, job_id=alloc.job_id,
                            per_node=per_node(alloc, request.tasks_per_node),
                            step_name=DASK_STEP if alloc.slurm else "", procs=(procs.me(),),
                            info={"dashboard_port": dashboard_port, "threads_per_task": threads,
                                  "scheduler_file": str(sfile)})
    state.write(session.state_file(NAME), context)
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env[procs.MARKER] = marker(session)
    started = time.monotonic()
    scheduler, _ = procs.spawn("dask scheduler", scheduler_argv(
        sys.executable, sfile, alloc.address, port, dashboard_port, options.interface),
        env=env, log=session.logs / "dask-scheduler.log")
    context = context.but(procs=(*context.procs, scheduler), logs=(scheduler.log,))
    state.write(session.state_file(NAME), context)
    try:
        _until_scheduler(sfile, scheduler, options, started)
        workers = _start_workers(session, alloc, request, options, threads, env)
        context = context.but(procs=(*context.procs, workers), logs=(scheduler.log, workers.log))
        state.write(session.state_file(NAME), context)
        _until_registered(context, alloc, session, options, started, workers)
    except BaseException as exc:
        failure = exc if isinstance(exc, StackgenError) else StackgenError(f"dask did not start: {exc}")
        stopped = stop(session, context.but(procs=context.procs[1:]), options)   # all but this process
        state.write(session.state_file(NAME), stopped.but(state="failed", detail=failure.message))
        raise failure from None
    ready = context.but(state="ready", procs=context.procs[1:],
                        detail=f"{context.expected} workers of {threads} threads on "
                        f"{', '.join(context.per_node)}; dashboard on port {dashboard_port}",
                        info={**context.info, "seconds": round(time.monotonic() - started, 2)})
    state.write(session.state_file(NAME), ready)
    return ready


def _start_workers(session, alloc, request, options, threads, env) -> procs.Proc:
    if alloc.slurm:
        argv = srun_prefix(alloc, request.tasks_per_node, DASK_STEP, session.logs, "dask-worker") + \
            worker_argv(sys.executable, scheduler_file(session), threads, "/tmp", 1, options.interface)
        what, log = "dask workers (srun)", session.logs / "dask-workers-srun.log"
    else:
        argv = worker_argv(sys.executable, scheduler_file(session), threads, str(session.root / "dask-worker-space"),
                           request.tasks_per_node, options.interface)
        what, log = "dask workers", session.logs / "dask-workers.log"
    proc, _ = procs.spawn(what, argv, env=env, log=log)
    return proc


def _until_scheduler(sfile, scheduler, options, started) -> None:
    while not sfile.exists():
        if not procs.is_running(scheduler):
            raise StackgenError(f"the dask scheduler ended; its log: {scheduler.log}")
        if time.monotonic() - started > options.start_timeout:
            raise StackgenError(f"the dask scheduler did not write {sfile} within "
                                f"{options.start_timeout:.0f} s; its log: {scheduler.log}")
        time.sleep(0.05)


def _until_registered(context, alloc, session, options, started, workers) -> None:
    from distributed import Client
    timeout = max(1.0, options.start_timeout - (time.monotonic() - started))
    with Client(scheduler_file=str(scheduler_file(session)), timeout=timeout,
                set_as_default=False) as client:
        while len(client.nthreads()) < context.expected:
            ended = not procs.is_running(workers)
            if ended or time.monotonic() - started > options.start_timeout:
                hosts = client.run(socket.gethostname) if client.nthreads() else {}
                seen: dict[str, int] = {}
                for host in hosts.values():
                    seen[host.split(".")[0]] = seen.get(host.split(".")[0], 0) + 1
                why = ("the workers' launcher ended" if ended
                       else f"not all workers registered within {options.start_timeout:.0f} s")
                raise StackgenError(
                    f"dask: {why}: " + missing_message(
                        context.per_node, seen, "workers",
                        (lambda n: task_log(session.logs, "dask-worker", n) + f" (srun: {workers.log})")
                        if alloc.slurm else (lambda n: workers.log)),
                    "ask for fewer tasks per node than the job has CPUs, or a longer parallel.start_timeout")
            time.sleep(0.1)


def stop(session: Session, context: state.Context, options: Options) -> state.Context:
    """Shut the scheduler (and its workers) down, then end whatever of ours is left."""
    unpublish(session)
    sfile = scheduler_file(session)
    if sfile.exists() and any(p.what == "dask scheduler" for p in context.running()):
        try:
            from distributed import Client
            with Client(scheduler_file=str(sfile), timeout=5, set_as_default=False) as client:
                client.shutdown()
        except Exception:   # it is ended below either way
            pass
    left = procs.end(context.procs, options.stop_timeout)
    left += procs.end_marked(marker(session), options.stop_timeout)
    if context.job_id and context.step_name:
        procs.cancel_steps(context.job_id, context.step_name, dict(os.environ))
    sfile.unlink(missing_ok=True)
    return context.but(state="stopped", detail="stopped" + (f"; could not end {left}" if left else ""))
