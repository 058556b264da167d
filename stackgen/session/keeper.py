"""The single-user server's session: what `stackgen-singleuser` runs.

It gives the server (and so every kernel and terminal) this job's session
environment, starts the contexts the spawner asked for in the background
(the lab comes up at once), runs the server as its child and, when the
server ends or the job signals it, stops every context of the session.

It is a child subreaper (Linux prctl): a context started from a notebook
leaves its daemons behind when the `stackgen parallel start` that made them
exits; they become children of this process instead of init's, so they
stay inside the job's process tree, where Slurm's process tracking (and
its kill at the end of the job) still finds them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

from stackgen.session import autostart, endwarning
from stackgen.session.contexts import stop_all
from stackgen.session.place import SESSION_DIR, USER_IPYTHONDIR, Session, session_key, state_home
from stackgen.session.plan import options_from

PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def say(message: str) -> None:
    print(f"stackgen-singleuser: {message}", file=sys.stderr, flush=True)


def session_env(env: dict[str, str]) -> tuple[Session, dict[str, str]]:
    """The session of this server (its own folder when outside a job) and the
    environment the server runs with."""
    if env.get(SESSION_DIR):
        session = Session.of(env)
    else:
        key = session_key(env, None if env.get("SLURM_JOB_ID") else os.getpid())
        session = Session(state_home(env) / "stackgen" / "sessions" / key)
    out = dict(env)
    out.setdefault(USER_IPYTHONDIR, env.get("IPYTHONDIR") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".ipython"))
    out.update(session.client_env())
    return session, out


def _subreaper() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        say("cannot become a subreaper: contexts started from notebooks rely on `stop`")


def _autostart(session: Session, env: dict[str, str]) -> list[subprocess.Popen]:
    chosen, problems = autostart.choices(env)
    for problem in problems:
        say(f"not starting a context: {problem}")
    started = []
    log = session.logs / "autostart.log"
    for choice in chosen:
        args = list(choice.args)
        if choice.name == "dask":
            # an address is published before the server starts, so Client() in the
            # first cell finds it while the scheduler comes up (the start takes its
            # port first, and publishes another if that one was taken meanwhile)
            from stackgen.session import daskctx
            from stackgen.session.allocation import detect
            options = options_from(env)
            alloc = detect(env, interface=options.interface)
            daskctx.publish(session, f"tcp://{alloc.address}:{daskctx.free_port(alloc.address)}")
            args += ["--address", alloc.address]
        argv = [sys.executable, "-m", "stackgen.user.cli", "parallel", "start", *args]
        say(f"starting {choice.name} in the background; `stackgen parallel status`, log {log}")
        with open(log, "ab") as out:
            out.write(f"$ stackgen parallel start {' '.join(args)}\n".encode())
            out.flush()
            started.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True))
    return started


def _dashboard_proxy(session: Session, env: dict[str, str]) -> None:
    """The server proxies the session's dask dashboard at stackgen-dask/ (what
    dask-labextension's defaultURL names), from a config folder of the session's,
    last in JUPYTER_CONFIG_PATH: the user's and the site's own config still win."""
    from stackgen.common.fsutil import write_atomic
    from stackgen.session import daskctx
    config = daskctx.proxy_config(daskctx.session_dashboard_port(session))
    write_atomic(session.jupyter_config_dir / "jupyter_server_config.json",
                 json.dumps(config, indent=1, sort_keys=True) + "\n", mode=0o600)
    paths = [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    if str(session.jupyter_config_dir) not in paths:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([*paths, str(session.jupyter_config_dir)])


def _production_defaults(session: Session, env: dict[str, str]) -> None:
    from stackgen.session import production
    from stackgen.session.allocation import detect
    options = options_from(env)
    try:
        production.write(session, detect(env, interface=options.interface), options, env)
    except Exception as exc:  # the server starts regardless; production jobs lack the defaults
        say(f"no defaults for production jobs: {exc}")


def keep(command: list[str]) -> int:
    # Slurm's warning before the time limit would kill (Python's default); its
    # line asks squeue (up to endwarning.SQUEUE_TIMEOUT), so it is written from
    # a thread: the handler returns at once and the server's end, or a signal
    # to pass on, is never held up by it
    def warn(signum, frame):
        threading.Thread(target=_warn_of_end, args=(dict(os.environ),), name="end warning",
                         daemon=True).start()
    signal.signal(endwarning.SIGNAL, warn)
    session, env = session_env(dict(os.environ))
    session.prepare(env)
    _dashboard_proxy(session, env)
    _production_defaults(session, env)
    os.environ.update(env)
    _subreaper()
    starters = _autostart(session, env)
    # the server starts with it ignored (a handler is not inherited, "ignored" is)
    # until jupyter_server installs its own, which logs the server's info
    signal.signal(endwarning.SIGNAL, signal.SIG_IGN)
    server = subprocess.Popen(command, env=env)
    signal.signal(endwarning.SIGNAL, warn)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        if server.poll() is None:
            server.send_signal(signum)
    for sig in FORWARDED:
        signal.signal(sig, forward)
    code = _wait_reaping(server)
    _finish(session, starters)
    return code


def _warn_of_end(env: dict[str, str]) -> None:
    """Slurm's warning before the time limit: said in the server's log, and
    nothing stops (not passed on: the server would only log its own info)."""
    job = env.get("SLURM_JOB_ID")
    end = endwarning.job_end(job) if job else None
    say(endwarning.warning_line(job, end, datetime.now()))


def _wait_reaping(server: subprocess.Popen) -> int:
    """Wait for the server, reaping the orphans this subreaper inherits."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return server.returncode if server.returncode is not None else 0
        except InterruptedError:
            continue
        if pid == server.pid:
            server.returncode = os.waitstatus_to_exitcode(status)
            return server.returncode


def _finish(session: Session, starters: list[subprocess.Popen]) -> None:
    for starter in starters:
        if starter.poll() is None:
            starter.terminate()      # a start still under way cleans up after itself
    deadline = time.monotonic() + 30
    for starter in starters:
        try:
            starter.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            starter.kill()
    for context in stop_all(session):
        say(f"{context.name}: {context.detail}")
