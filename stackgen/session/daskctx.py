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
from stackgen.common.ui import progress
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


def published_port(session: Session, host: str) -> int:
    """The port of the address published for this session on `host` (the
    launcher publishes one before the server starts), else 0."""
    try:
        lines = session.dask_address_file.read_text().splitlines()
        address = json.loads("".join(line for line in lines if not line.startswith("#")))["scheduler-address"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    where, _, port = address.rpartition(":")
    return int(port) if where == f"tcp://{host}" and port.isdigit() else 0


def unpublish(session: Session) -> None:
    session.dask_address_file.unlink(missing_ok=True)


def start(session: Session, alloc: Allocation, request: DaskRequest, options: Options,
          port: int = 0, dashboard_port: int = 0) -> state.Context:
    threads = dask_threads(alloc, request)
    dashboard_port = dashboard_port or session_dashboard_port(session)
    sfile = scheduler_file(session)
    context = state.Context(NAME, "starting", job_id=alloc.job_id,
                            per_node=per_node(alloc, request.tasks_per_node),
                            step_name=DASK_STEP if alloc.slurm else "", procs=(procs.me(),),
                            info={"dashboard_port": dashboard_port, "threads_per_task": threads,
                                  "scheduler_file": str(sfile)})
    state.write(session.state_file(NAME), context)
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env[procs.MARKER] = marker(session)
    started = time.monotonic()
    try:
        context = _start_scheduler(session, context, alloc, options, env, port, started)
        workers = _start_workers(session, alloc, request, options, threads, env)
        context = context.but(procs=(*context.procs, workers), logs=(*context.logs, workers.log))
        state.write(session.state_file(NAME), context)
        _until_registered(context, alloc, session, options, started, workers)
    except BaseException as exc:
        failure = exc if isinstance(exc, StackgenError) else StackgenError(f"dask did not start: {exc}")
        context = state.read(session.state_file(NAME)) or context      # as far as the start got
        stopped = stop(session, context.but(procs=context.procs[1:]), options)   # all but this process
        state.write(session.state_file(NAME), stopped.but(state="failed", detail=failure.message))
        raise failure from None
    dashboard = context.info["dashboard_port"]
    moved = "" if dashboard == dashboard_port else \
        f" (port {dashboard_port}, which the lab's dask sidebar proxies, was taken: open /proxy/{dashboard}/status)"
    ready = context.but(state="ready", procs=context.procs[1:],
                        detail=f"{context.expected} workers of {threads} threads on "
                        f"{', '.join(context.per_node)}; dashboard on port {dashboard}{moved}",
                        info={**context.info, "seconds": round(time.monotonic() - started, 2)})
    state.write(session.state_file(NAME), ready)
    return ready


# A port chosen free may be taken by another process (the other context's
# controller, a kernel) before the scheduler binds it: a scheduler that ends
# for that is started again on another port, unless the user named the port.
# The first choice is the port published for the session (the launcher's).
PORT_ATTEMPTS = 3
_PORT_TAKEN = b"Address already in use"


def _start_scheduler(session, context, alloc, options, env, port, started) -> state.Context:
    """The scheduler, up: its file written, its address published; the context with it."""
    sfile = scheduler_file(session)
    log = session.logs / "dask-scheduler.log"
    first = port or published_port(session, alloc.address)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        chosen = first if attempt == 1 and first else port or free_port(alloc.address)
        address = f"tcp://{alloc.address}:{chosen}"
        sfile.unlink(missing_ok=True)
        publish(session, address)
        before = log.stat().st_size if log.exists() else 0
        scheduler, _ = procs.spawn("dask scheduler", scheduler_argv(
            sys.executable, sfile, alloc.address, chosen, context.info["dashboard_port"], options.interface),
            env=env, log=log)
        context = context.but(address=address, procs=(*context.procs[:1], scheduler), logs=(scheduler.log,))
        state.write(session.state_file(NAME), context)
        written = _until_scheduler(sfile, scheduler, options, started,
                                   retry=not port and attempt < PORT_ATTEMPTS, log_from=before)
        if written is not None:
            break
        progress(f"dask: port {chosen} was taken before the scheduler bound it; trying another")
    if written.get("address", address) != address:     # --interface: the scheduler's own choice
        address = written["address"]
        publish(session, address)
    dashboard = written.get("services", {}).get("dashboard", context.info["dashboard_port"])
    context = context.but(address=address, info={**context.info, "dashboard_port": dashboard})
    state.write(session.state_file(NAME), context)
    return context


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


def _until_scheduler(sfile, scheduler, options, started, retry: bool, log_from: int) -> dict | None:
    """The scheduler file once written, or None when the scheduler ended because
    its port was taken and `retry` allows another attempt."""
    while True:
        written = _read_scheduler_file(sfile)
        if written is not None:
            return written
        if not procs.is_running(scheduler):
            if retry and _PORT_TAKEN in _read_from(scheduler.log, log_from):
                return None
            raise StackgenError(f"the dask scheduler ended; its log: {scheduler.log}")
        if time.monotonic() - started > options.start_timeout:
            raise StackgenError(f"the dask scheduler did not write {sfile} within "
                                f"{options.start_timeout:.0f} s; its log: {scheduler.log}")
        time.sleep(0.05)


def _read_scheduler_file(sfile) -> dict | None:
    """Its JSON, or None while it is absent or still being written."""
    try:
        return json.loads(sfile.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _read_from(path: str, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


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
