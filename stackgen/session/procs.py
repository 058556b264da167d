"""The session's long-running processes: each started in a process group of
its own (so one signal reaches what it starts, and a Ctrl-C in the terminal
that started it does not), recorded by pid and start time (so a recycled pid
is never signalled), and ended TERM first, KILL at a deadline.

Short commands (scontrol, scancel, squeue) go through stackgen.common.run;
only daemons start here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from stackgen.common.run import run


@dataclass(frozen=True)
class Proc:
    """One process the session started: a daemon or an srun client."""

    what: str            # "dask scheduler", "dask workers (srun)"
    pid: int
    start: int           # its start time in clock ticks since boot (/proc/PID/stat)
    log: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Proc:
        return cls(str(data["what"]), int(data["pid"]), int(data["start"]), str(data["log"]))


def start_ticks(pid: int) -> int | None:
    """When `pid` started (field 22 of /proc/PID/stat), or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[19])


def is_running(proc: Proc) -> bool:
    """The same process is still there (and not a zombie)."""
    if start_ticks(proc.pid) != proc.start:
        return False
    try:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def me(log: str = "") -> Proc:
    """This process, as a context records its start under way: a stop (or a
    second start) meanwhile sees it, and a TERM makes it clean up."""
    return Proc("stackgen parallel start", os.getpid(), start_ticks(os.getpid()) or 0, log)


def spawn(what: str, argv: Sequence[str], *, env: Mapping[str, str], log: Path) -> tuple[Proc, subprocess.Popen]:
    """Start a daemon in a new session (its own process group), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(what, popen.pid, start_ticks(popen.pid) or 0, str(log)), popen


def end(procs: Iterable[Proc], timeout: float = 10.0, poll: float = 0.05) -> list[Proc]:
    """TERM to each process's group, KILL to what is left at the deadline.
    Returns what could not be ended (empty when all are gone)."""
    procs = [p for p in procs if is_running(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if is_running(proc):
                _signal_group(proc, sig)
        deadline = time.monotonic() + timeout
        while any(is_running(p) for p in procs) and time.monotonic() < deadline:
            _reap()
            time.sleep(poll)
        procs = [p for p in procs if is_running(p)]
        if not procs:
            break
    return procs


def _signal_group(proc: Proc, sig: int) -> None:
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap() -> None:
    """Collect exited children of this process, so they do not linger as zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def steps_named(job_id: str, name: str, env: Mapping[str, str]) -> list[str]:
    """The job's steps (JOBID.STEP) with this name, from squeue."""
    out = run(["squeue", "-h", "-s", "-j", job_id, "-o", "%i %j"], env=env, check=False).stdout
    return parse_steps(out, name)


def parse_steps(squeue_output: str, name: str) -> list[str]:
    steps = []
    for line in squeue_output.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip() == name:
            steps.append(parts[0])
    return steps


def cancel_steps(job_id: str, name: str, env: Mapping[str, str]) -> list[str]:
    """scancel every step of the job named `name` (what a killed srun client may leave)."""
    steps = steps_named(job_id, name, env)
    if steps:
        run(["scancel", *steps], env=env, check=False, describe="cancelling job steps")
    return steps


# Every process a context starts carries this variable (inherited, also
# through srun), so what its processes start in sessions of their own
# (ipyparallel's engine nannies) can be found on this node too.
MARKER = "STACKGEN_CONTEXT"


def marked(value: str) -> list[int]:
    """This user's processes on this node whose environment has MARKER=value."""
    needle = f"{MARKER}={value}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            if needle in (entry / "environ").read_bytes() + b"\0":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def end_marked(value: str, timeout: float = 10.0) -> list[int]:
    """Let the marked processes finish their exit until the deadline, then end them."""
    deadline = time.monotonic() + timeout
    while marked(value) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)
    left = [Proc("marked", pid, start_ticks(pid) or 0, "") for pid in marked(value)]
    return [p.pid for p in end(left, timeout)]
