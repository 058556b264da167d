"""The ipyparallel context: ipyparallel's own Cluster API, with its
controller here, listening on this node's address, and its engines through
its MPI engine launcher, whose MPI command is `srun` across the allocation
(or local processes outside Slurm). Ready when every engine has registered
with the controller; the Cluster's own file records what runs, for stop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path

from stackgen.common.errors import StackgenError
from stackgen.session import procs as procs_mod
from stackgen.session import state
from stackgen.session.allocation import Allocation
from stackgen.session.place import Session
from stackgen.session.plan import IPP_STEP, IppRequest, Options, ipp_per_node, srun_prefix, task_log
from stackgen.session.readiness import missing_message

NAME = "ipyparallel"
log = logging.getLogger("stackgen.session.ipp")


def _launcher_class():
    from ipyparallel.cluster.launcher import MPIEngineSetLauncher
    from traitlets import Bool

    class SrunEngineSetLauncher(MPIEngineSetLauncher):
        """MPIEngineSetLauncher with `srun` as its MPI command; engines join
        MPI (rank = engine id) only when asked, as srun starts tasks either way."""

        # how a cluster file names this class, so Cluster.from_file finds it again
        entrypoint_name = "stackgen.session.ipp.SrunEngineSetLauncher"
        use_mpi = Bool(False, config=True).tag(to_dict=True)

        @property
        def program(self):
            return self.engine_cmd + (["--mpi"] if self.use_mpi else [])

    return SrunEngineSetLauncher


def __getattr__(name):  # the class is made on first use: ipyparallel is not imported before
    if name == "SrunEngineSetLauncher":
        return _launcher_class()
    raise AttributeError(name)


def cluster_file(session: Session) -> Path:
    return session.profile_dir / "security" / "cluster-.json"


def start(session: Session, alloc: Allocation, request: IppRequest, options: Options) -> state.Context:
    per_node = ipp_per_node(alloc, request)
    context = state.Context(NAME, "starting", address=alloc.address, job_id=alloc.job_id,
                            per_node=per_node, step_name=IPP_STEP if alloc.slurm else "",
                            procs=(procs_mod.me(),), info={"mpi": request.mpi})
    state.write(session.state_file(NAME), context)
    os.environ[procs_mod.MARKER] = marker(session)   # the launchers pass os.environ on
    return asyncio.run(_start(session, alloc, request, options, context))


def marker(session: Session) -> str:
    return f"{session.root}#{NAME}"


def _config(session: Session, alloc: Allocation, request: IppRequest, options: Options, per_task: int):
    from traitlets.config import Config
    config = Config()
    if alloc.slurm:
        config.SrunEngineSetLauncher.mpi_cmd = srun_prefix(
            alloc, per_task, IPP_STEP, session.logs, "ipengine",
            mpi=options.mpi_plugin if request.mpi else "none")
        config.SrunEngineSetLauncher.use_mpi = request.mpi
        return config, "stackgen.session.ipp.SrunEngineSetLauncher"
    if request.mpi:
        return config, "mpi"         # ipyparallel's own: mpiexec -n N ipengine --mpi
    return config, "local"


async def _start(session, alloc, request, options, context) -> state.Context:
    from ipyparallel.cluster import Cluster
    n = context.expected
    config, engines = _config(session, alloc, request, options, next(iter(context.per_node.values())))
    cluster = Cluster(profile_dir=str(session.profile_dir), cluster_id="", n=n, delay=0,
                      controller_ip=alloc.address, shutdown_atexit=False, load_profile=False,
                      engine_launcher_class=engines, config=config, log=log)
    started = time.monotonic()
    client = None
    try:
        await cluster.start_controller()
        await cluster.start_engines(n)
        client = await cluster.connect_client()
        await _until_registered(cluster, client, context, alloc, session, options, started)
    except BaseException as exc:
        failure = exc if isinstance(exc, StackgenError) else StackgenError(
            f"ipyparallel did not start: {exc}", f"logs: {session.logs}, {session.profile_dir / 'log'}")
        if client is not None:
            client.close()
        await cluster.stop_cluster()
        _stopped_leftovers(session, context.but(procs=()), options)
        state.write(session.state_file(NAME), context.but(state="failed", detail=failure.message))
        raise failure from None
    client.close()
    ready = context.but(state="ready", procs=tuple(_procs(cluster)), logs=tuple(_logs(cluster, session, alloc)),
                        detail=f"{n} engines on {', '.join(context.per_node)}"
                        + (" (MPI: engine id = rank)" if request.mpi else ""),
                        info={**context.info, "cluster_file": cluster.cluster_file,
                              "seconds": round(time.monotonic() - started, 2)})
    state.write(session.state_file(NAME), ready)
    return ready


async def _until_registered(cluster, client, context, alloc, session, options, started) -> None:
    """Until every engine has registered: polls the controller's registrations,
    fails at once if the engines' launcher or the controller ends, and at the deadline."""
    n = context.expected
    while len(client.ids) < n:
        ended = cluster.engine_set is None or cluster.engine_set.state == "after"
        if cluster.controller.state == "after":
            raise StackgenError(f"the ipyparallel controller ended; its log: {cluster.controller.output_file}")
        if ended or time.monotonic() - started > options.start_timeout:
            seen = _engine_nodes(client)
            why = ("the engines' launcher ended" if ended
                   else f"not all engines registered within {options.start_timeout:.0f} s")
            said = _last_words(cluster.engine_set) if ended else ""
            raise StackgenError(
                f"ipyparallel: {why}: "
                + missing_message(context.per_node, seen, "engines", _log_of(session, alloc))
                + (f"; it said: {said}" if said else ""),
                "ask for fewer engines per node than the job has CPUs, or a longer parallel.start_timeout")
        await asyncio.sleep(0.1)


def _last_words(engine_set, lines: int = 3) -> str:
    """The end of what the engines' launcher (srun, mpiexec) printed; ipyparallel
    keeps it after removing its output file."""
    try:
        output = engine_set.get_output() if engine_set is not None else ""
    except Exception:
        return ""
    return " | ".join([line.strip() for line in output.splitlines() if line.strip()][-lines:])


def _engine_nodes(client) -> dict[str, int]:
    seen: dict[str, int] = {}
    if client.ids:
        for host in client[:].apply_sync(socket.gethostname):
            seen[host.split(".")[0]] = seen.get(host.split(".")[0], 0) + 1
    return seen


def _log_of(session, alloc):
    if alloc.slurm:
        return lambda node: task_log(session.logs, "ipengine", node)
    return lambda node: str(session.profile_dir / "log")


def _procs(cluster) -> list[procs_mod.Proc]:
    found = []
    launchers = [("ipyparallel controller", cluster.controller)]
    for engine_set in cluster.engines.values():
        subs = getattr(engine_set, "launchers", None)
        launchers += ([("ipengine", sub) for sub in subs.values()] if subs
                      else [("ipengines (srun/mpiexec)", engine_set)])
    for what, launcher in launchers:
        pid = getattr(launcher, "pid", -1)
        if pid > 0:
            found.append(procs_mod.Proc(what, pid, procs_mod.start_ticks(pid) or 0,
                                       getattr(launcher, "output_file", "")))
    return found


def _logs(cluster, session, alloc) -> list[str]:
    logs = [p.log for p in _procs(cluster) if p.log]
    if alloc.slurm:
        logs.append(str(session.logs / "ipengine-NODE-TASK.log"))
    return logs


def stop(session: Session, context: state.Context, options: Options) -> state.Context:
    """Stop through the Cluster's own file, then end whatever of ours is left."""
    path = cluster_file(session)
    if path.exists():
        try:
            asyncio.run(_stop_from_file(path, session.logs / "ipyparallel-stop.log"))
        except Exception as exc:  # a cluster file of processes long gone, for one
            log.info("stopping from %s: %s", path, exc)
    left = _stopped_leftovers(session, context, options)
    return context.but(state="stopped", detail="stopped" + (f"; could not end {left}" if left else ""))


async def _stop_from_file(path: Path, logfile: Path) -> None:
    from ipyparallel.cluster import Cluster
    _launcher_class()
    # what the processes said as they stopped goes to a file, not the user's terminal
    stop_log = logging.getLogger("stackgen.session.ipp.stop")
    stop_log.propagate = False
    handler = logging.FileHandler(logfile)
    stop_log.handlers = [handler]
    try:
        cluster = Cluster.from_file(str(path), log=stop_log)
        # engines first, while the controller still takes their nannies' goodbye
        # (a nanny whose controller is gone lingers 3 s before it exits)
        await cluster.stop_engines()
        await cluster.stop_controller()
    finally:
        handler.close()


def _stopped_leftovers(session, context, options) -> list:
    left = procs_mod.end(context.procs, options.stop_timeout)
    left += procs_mod.end_marked(marker(session), options.stop_timeout)
    if context.job_id and context.step_name:
        procs_mod.cancel_steps(context.job_id, context.step_name, dict(os.environ))
    for stale in (session.profile_dir / "security").glob("ipcontroller-*.json"):
        stale.unlink(missing_ok=True)
    cluster_file(session).unlink(missing_ok=True)
    return left
