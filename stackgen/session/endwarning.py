"""The warning before a job's time limit: the hub's job asks Slurm for a
signal to its batch process some minutes before the end (sbatch
--signal=B:USR1@N); the launcher, which is that process, says in the server's
log when the allocation ends, and everything keeps running. Python's default
for SIGUSR1 would kill the launcher, and with it the job."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime

SIGNAL = signal.SIGUSR1      # what the hub's batch script asks for (stackgen.site.hubform)
SQUEUE_TIMEOUT = 10          # seconds; the warning is written without the time after that


def parse_end(text: str) -> datetime | None:
    """squeue's %e ("2026-12-04T13:05:00", the cluster's local time), or None."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def job_end(job: str) -> datetime | None:
    """When Slurm will end `job`, by its own account."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True,
                              text=True, timeout=SQUEUE_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_end(done.stdout) if done.returncode == 0 else None


def warning_line(job: str | None, end: datetime | None, now: datetime) -> str:
    """The line for the server's log."""
    which = f"job {job}" if job else "this job"
    if end is None:
        return (f"Slurm warns that {which} reaches its time limit soon: "
                "save your work; the server keeps running until then")
    minutes = max(0, round((end - now).total_seconds() / 60))
    return (f"Slurm warns that {which} reaches its time limit at {end:%Y-%m-%d %H:%M:%S} "
            f"(in about {minutes} min): save your work; the server keeps running until then")
