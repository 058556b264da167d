"""Parallel contexts in local mode (no Slurm) on the session-built stack, as
an ordinary user: the single-user launcher starts both contexts from the
spawner's variables, notebooks connect with clients of no arguments, and the
server's end stops every process; the commands alone do the same; two
sessions do not see each other's contexts."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from e2e import KERNEL_CLIENT, LabServer, ensure_user, login_shell, with_lab
from parallel_e2e import client_cell, last_json, states_report, wait_no_context_processes

pytestmark = [pytest.mark.slow, pytest.mark.lmod]


def launcher(built) -> str:
    return str(built.prefix / "software" / "jupyterlab" / "2026.11" / "bin" / "stackgen-singleuser")


def run_cell(built, server, code) -> dict:
    ran = login_shell(with_lab(built.prefix, shlex.join(
        ["python", "-c", KERNEL_CLIENT, server.url, server.token, code])), home=built.home, timeout=600)
    return last_json(ran.stdout + "\n" + ran.stderr)


def test_the_launcher_starts_both_contexts_and_clients_need_no_arguments(built_stack):
    user = ensure_user()
    server = LabServer(built_stack.prefix, Path(user.pw_dir), user=user.pw_name, server=(
        "env", "STACKGEN_IPYPARALLEL=1", "STACKGEN_IPYPARALLEL_PROCS_PER_NODE=2", "STACKGEN_DASK=1",
        "STACKGEN_DASK_TASKS_PER_NODE=2", "STACKGEN_DASK_THREADS_PER_TASK=1",
        launcher(built_stack), "--", "jupyter", "lab"))
    try:
        server.wait()
        out = run_cell(built_stack, server, client_cell(("ipyparallel", "dask")))
        # the dask sidebar's default URL, and the dashboard proxied there by this server
        _, settings = server.get("/lab/api/settings/dask-labextension:plugin")
        assert json.loads(settings)["schema"]["properties"]["defaultURL"]["default"] == "stackgen-dask/"
        status, plots = server.get("/stackgen-dask/individual-plots.json")
        assert status == 200 and "Individual Task Stream" in json.loads(plots)
    finally:
        server.stop()
    assert out["states"] == {"ipyparallel": "ready", "dask": "ready"}, states_report(out)
    assert out["ids"] == [0, 1] and len(out["engines"]) == 2
    assert len(out["workers"]) == 2 and out["sum"] == 160000.0
    assert "/proxy/" in out["dashboard"]
    session = out["session"]
    assert session.startswith(user.pw_dir) and "/local-" in session
    assert wait_no_context_processes(session) == []
    for name in ("ipyparallel", "dask"):
        assert json.loads(Path(session, f"{name}.json").read_text())["state"] == "stopped"
    log = (Path(user.pw_dir) / "lab.log").read_text()
    assert "ipyparallel: stopped" in log and "dask: stopped" in log


def shell(built, home, script, **kw):
    return login_shell(with_lab(built.prefix, script), home=home, **kw)


def test_the_commands_start_show_and_stop_and_sessions_stay_apart(built_stack):
    home = built_stack.root / "home-parallel"
    home.mkdir(exist_ok=True)
    a, b = home / "session-a", home / "session-b"
    start = shell(built_stack, home, f"export STACKGEN_SESSION_DIR={a}; "
                  "stackgen parallel start dask --tasks-per-node 1 --threads-per-task 1 --json")
    assert start.returncode == 0, start.stderr
    started = json.loads(start.stdout)
    assert started["state"] == "ready" and started["address"].startswith("tcp://127.0.0.1:")
    try:
        # a second session (another job) finds no scheduler of the first
        other = shell(built_stack, home, f'eval "$(STACKGEN_SESSION_DIR={b} stackgen parallel env)"; '
                      "python -c 'import dask; print(dask.config.get(\"scheduler-address\", None))'")
        assert other.stdout.strip() == "None", other.stderr
        mine = shell(built_stack, home, f'eval "$(STACKGEN_SESSION_DIR={a} stackgen parallel env)"; '
                     "python -c 'from dask.distributed import Client; c = Client(); "
                     "print(c.scheduler.address)'")
        assert mine.stdout.strip() == started["address"], mine.stderr
        twice = shell(built_stack, home, f"STACKGEN_SESSION_DIR={a} stackgen parallel start dask")
        assert twice.returncode == 2 and "already ready" in twice.stderr
        status = json.loads(shell(built_stack, home, f"STACKGEN_SESSION_DIR={a} "
                                  "stackgen parallel status --json").stdout)
        (dask,) = status["contexts"]
        assert dask["shown_state"] == "ready" and len(dask["running"]) == 2
    finally:
        stop = shell(built_stack, home, f"STACKGEN_SESSION_DIR={a} stackgen parallel stop")
    assert stop.returncode == 0 and "dask: stopped" in stop.stdout, stop.stderr
    assert wait_no_context_processes(str(a)) == []
    assert not (a / "dask-config" / "stackgen-session.yaml").exists()


# As the launcher does, an address is published for the session before dask
# starts; here its port (and the session's dashboard port) is already taken, as
# another context's controller or a kernel may take it between the choice and
# the scheduler's bind. The ports are held while `stackgen parallel start` runs.
TAKEN_PORTS = r"""
import json, socket, subprocess
from stackgen.session import daskctx
from stackgen.session.place import Session
held = [socket.socket() for _ in range(2)]
for s in held:
    s.bind(("127.0.0.1", 0))
    s.listen()
taken = [s.getsockname()[1] for s in held]
session = Session.of()
session.prepare()
daskctx.publish(session, f"tcp://127.0.0.1:{taken[0]}")
session.dashboard_port_file.write_text(f"{taken[1]}\n")
ran = subprocess.run(["stackgen", "parallel", "start", "dask", "--address", "127.0.0.1", "--tasks-per-node", "1",
                      "--threads-per-task", "1", "--json"], capture_output=True, text=True)
print(json.dumps({"taken": taken, "code": ran.returncode, "context": json.loads(ran.stdout or "{}"),
                  "stderr": ran.stderr, "client": daskctx.published_port(session, "127.0.0.1")}))
"""


def test_a_published_port_taken_before_the_scheduler_binds_it_is_replaced_and_a_taken_dashboard_named(
        built_stack):
    home = built_stack.root / "home-parallel"
    home.mkdir(exist_ok=True)
    session = home / "session-ports"
    try:
        ran = shell(built_stack, home, f"export STACKGEN_SESSION_DIR={session}; "
                    f"python -c {shlex.quote(TAKEN_PORTS)}")
        out = last_json(ran.stdout + "\n" + ran.stderr)
    finally:
        stop = shell(built_stack, home, f"STACKGEN_SESSION_DIR={session} stackgen parallel stop")
    (scheduler_port, dashboard_port), context = out["taken"], out["context"]
    assert out["code"] == 0 and context["state"] == "ready", out
    assert f"port {scheduler_port} was taken before the scheduler bound it" in out["stderr"]
    port = int(context["address"].rpartition(":")[2])
    assert context["address"].startswith("tcp://127.0.0.1:") and port != scheduler_port, context
    assert out["client"] == port              # Client() of the session goes where the scheduler is
    assert context["info"]["dashboard_port"] != dashboard_port
    assert f"port {dashboard_port}, which the lab's dask sidebar proxies, was taken" in context["detail"]
    assert stop.returncode == 0, stop.stderr
    assert wait_no_context_processes(str(session)) == []
