"""`stackgen parallel ...`: what each command does, wired from the pieces
(place, allocation, plan, the two contexts, state)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal

from stackgen.common.errors import InputError
from stackgen.common.ui import emit_json, progress
from stackgen.session import daskctx, ipp, production, state
from stackgen.session.allocation import detect
from stackgen.session.contexts import contexts, stop_all
from stackgen.session.place import Session
from stackgen.session.plan import DaskRequest, IppRequest, options_from


def _options(args):
    options = options_from(dict(os.environ))
    if getattr(args, "timeout", None):
        options = dataclasses.replace(options, start_timeout=float(args.timeout))
    return options


def _stop_on_term() -> None:
    """A start ended by SIGTERM (the server ending) cleans up what it started."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _refuse_running(session: Session, name: str) -> None:
    current = state.read(session.state_file(name))
    if current and current.state in ("starting", "ready") and current.running():
        raise InputError(f"{name} is already {current.state} in this session ({session.root})",
                         f"stop it first: stackgen parallel stop {name}")


def start(args: argparse.Namespace) -> int:
    session = Session.of()
    session.prepare()
    options = _options(args)
    _refuse_running(session, args.kind)
    _stop_on_term()
    alloc = detect(interface=options.interface, address=args.address or "")
    where = f"job {alloc.job_id}, nodes {','.join(alloc.nodes)}" if alloc.slurm else "this host (no Slurm job)"
    progress(f"starting {args.kind} on {where}, listening on {alloc.address}")
    if args.kind == "ipyparallel":
        context = ipp.start(session, alloc, IppRequest(args.procs_per_node, args.mpi), options)
    else:
        context = daskctx.start(session, alloc, DaskRequest(args.tasks_per_node, args.threads_per_task),
                                options, port=args.port or 0, dashboard_port=args.dashboard_port or 0)
    if args.json:
        emit_json(context.to_dict())
    else:
        print(f"{context.name}: {context.detail}")
    return 0


def status(args: argparse.Namespace) -> int:
    session = Session.of()
    found = contexts(session)
    rows = []
    for context in found:
        running = context.running()
        shown = context.state
        if context.state in ("starting", "ready") and not running:
            shown = "gone"     # its processes ended without a stop (the job ended, for one)
        rows.append({**context.to_dict(), "shown_state": shown,
                     "running": [p.to_dict() for p in running]})
    if args.json:
        emit_json({"session": str(session.root), "contexts": rows,
                   "autostart_log": str(session.logs / "autostart.log")})
        return 0
    print(f"session: {session.root}")
    if not rows:
        print("no parallel contexts (start one: stackgen parallel start ipyparallel|dask)")
    for row in rows:
        print(f"{row['name']}: {row['shown_state']} at {row['address']}: {row['detail']}")
        for log in row["logs"]:
            print(f"  log: {log}")
    return 0


def stop(args: argparse.Namespace) -> int:
    session = Session.of()
    names = [args.name] if args.name else None
    if args.name and not state.read(session.state_file(args.name)):
        raise InputError(f"no {args.name} context in this session ({session.root})",
                         "see what runs: stackgen parallel status")
    stopped = stop_all(session, names)
    if args.json:
        emit_json({"stopped": [c.to_dict() for c in stopped]})
    for context in stopped:
        print(f"{context.name}: {context.detail}")
    left = [p for c in stopped for p in c.running()]
    return 1 if left else 0


def env(args: argparse.Namespace) -> int:
    """Shell lines that point a shell (and Python in it) at this session."""
    session = Session.of()
    session.prepare()
    options = options_from(dict(os.environ))
    production.write(session, detect(interface=options.interface), options, dict(os.environ))
    for key, value in sorted(session.client_env().items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def run_server(args: argparse.Namespace) -> int:
    from stackgen.session.keeper import keep
    command = [a for a in args.command if a != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        raise InputError("no command to run", "stackgen parallel run -- jupyterhub-singleuser ...")
    return keep(command)
