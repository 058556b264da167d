"""Helpers for the parallel contexts' end-to-end tests: the cell a kernel
runs to use both contexts with clients of no arguments, and the process
table of a session's contexts."""

from __future__ import annotations

import json
import time
from pathlib import Path

# Run in a kernel of the session's server: wait (by polling the session's
# state, no fixed sleep) until both contexts are ready, then connect with no
# arguments and compute. Prints one JSON line.
CLIENT_CELL = r"""
import json, os, socket, subprocess, time
deadline = time.monotonic() + 300
while True:
    status = json.loads(subprocess.run(["stackgen", "parallel", "status", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    states = {c["name"]: c["state"] for c in status["contexts"]}
    if set(states) >= WANTED and all(states[n] in ("ready", "failed") for n in WANTED):
        break
    if time.monotonic() > deadline:
        raise RuntimeError(f"contexts not ready: {states}")
    time.sleep(0.2)
out = {"states": states, "session": os.environ["STACKGEN_SESSION_DIR"],
       "details": {c["name"]: c["detail"] for c in status["contexts"]}}
if "ipyparallel" in WANTED and states["ipyparallel"] == "ready":
    import ipyparallel
    rc = ipyparallel.Client()
    view = rc[:]
    out["engines"] = sorted(view.apply_sync(lambda: (__import__("os").environ.get("SLURMD_NODENAME")
                                                     or __import__("socket").gethostname())))
    out["ids"] = rc.ids
    if MPI:
        def allreduce():
            from mpi4py import MPI
            world = MPI.COMM_WORLD
            return world.rank, world.allreduce(world.rank + 1)
        out["mpi"] = sorted(view.apply_sync(allreduce))
    rc.close()
if "dask" in WANTED and states["dask"] == "ready":
    import dask.array as da
    from dask.distributed import Client
    client = Client()
    out["workers"] = sorted(client.run(lambda: (__import__("os").environ.get("SLURMD_NODENAME")
                                                or __import__("socket").gethostname())).values())
    out["sum"] = float(da.ones((400, 400), chunks=(100, 100)).sum().compute())
    out["dashboard"] = client.dashboard_link
    client.close()
print(json.dumps(out))
"""


def client_cell(wanted: tuple[str, ...], mpi: bool = False) -> str:
    return f"WANTED = {set(wanted)!r}\nMPI = {mpi!r}\n" + CLIENT_CELL


def context_processes(session: str) -> list[str]:
    """Processes on this host (and its namespaces) started for `session`'s contexts."""
    needle = f"STACKGEN_CONTEXT={session}#".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found.append(f"{entry.name}: {command}")
            except OSError:
                continue
    return found


def wait_no_context_processes(session: str, timeout: float = 30) -> list[str]:
    """Poll until none are left (an exiting process takes a moment); what is left at the deadline."""
    deadline = time.monotonic() + timeout
    while context_processes(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    return context_processes(session)


def states_report(result: dict) -> str:
    """Why a context is not ready: each one's state and detail, then the end
    of every log of the session (read before the test's user is removed)."""
    lines = [f"{name}: {state}: {result['details'].get(name, '')}" for name, state in result["states"].items()]
    for log in sorted(Path(result["session"], "logs").glob("*.log")):
        lines += [f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-15:]]
    return "\n".join(lines)


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON line in: {text[-3000:]}")
