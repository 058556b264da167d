"""The one funnel for subprocesses.

Every external command (pip, uv, eb, Lmod, jupyter) runs through `run`:
an argv list, an explicit environment, output captured and logged, and a
failure raised as a CommandError carrying the command and its tail.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.errors import CommandError

log = logging.getLogger("stackgen.common.run")

# Variables that make pip or uv read configuration we did not choose: extra
# indexes, find-links, constraints. A lock must mean the same on any machine.
_AMBIENT_PREFIXES = ("PIP_", "UV_", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE",
                     "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONSTARTUP")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


HEARTBEAT = 15.0


def _wait(proc: subprocess.Popen, input: str | None, timeout: float | None,
          heartbeat: Callable[[float], None] | None, what: str) -> tuple[str, str]:
    start = time.monotonic()
    step = HEARTBEAT if heartbeat else timeout
    while True:
        elapsed = time.monotonic() - start
        wait = step if timeout is None else min(step or timeout, max(timeout - elapsed, 0.01))
        try:
            return proc.communicate(input=input, timeout=wait)
        except subprocess.TimeoutExpired:
            input = None            # already handed over on the first call
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed >= timeout:
                proc.kill()
                out, err = proc.communicate()
                raise CommandError([str(a) for a in proc.args], -1, (out or "") + (err or ""),
                                   message=f"{what}: timed out after {timeout:.0f} s") from None
            if heartbeat:
                heartbeat(elapsed)
        except BaseException:
            proc.kill()
            proc.wait()
            raise


def _stream(proc: subprocess.Popen, on_line: Callable[[str], None]) -> str:
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return "".join(lines)


def clean_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for an installer or resolver: no ambient pip/uv config."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(_AMBIENT_PREFIXES)}
    env.update({
        "PIP_CONFIG_FILE": os.devnull,      # ignore /etc/pip.conf, ~/.config/pip
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_CONFIG": "1",                # ignore uv.toml / pyproject [tool.uv]
        "PYTHONNOUSERSITE": "1",
    })
    env.update(extra)
    return env


# A command stackgen runs ends when stackgen does, even by SIGKILL: a killed
# `stackgen lock` must not leave its resolver running for minutes. setpriv
# (util-linux) sets the parent-death signal, then runs the command itself.
_DIES_WITH_STACKGEN = ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ()


def run(argv: Sequence[str | os.PathLike], *, env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None, check: bool = True,
        describe: str | None = None, hint: str | None = None,
        logfile: Path | None = None, input: str | None = None,
        timeout: float | None = None,
        heartbeat: Callable[[float], None] | None = None,
        on_line: Callable[[str], None] | None = None) -> Result:
    """Run argv, capture its output, log it; raise CommandError on failure.

    `describe` names the step for the user ("resolving with pip-tools");
    `logfile`, when given, receives the full output so the error can point at it;
    `heartbeat(seconds)` is called every HEARTBEAT seconds while it runs, so a
    long step can show it is alive; `on_line(line)` sees each line of output
    (stderr merged into stdout) as it comes, for progress.
    """
    args = [os.fspath(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    if shutil.which(args[0], path=search) is None:
        raise CommandError(args, 127, "", message=f"{describe or 'command'}: "
                           f"{args[0]} not found", hint=hint)
    try:
        proc = subprocess.Popen([*_DIES_WITH_STACKGEN, *args],
                                env=dict(env) if env is not None else None, cwd=cwd,
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if on_line else subprocess.PIPE,
                                text=True)
    except FileNotFoundError as exc:
        raise CommandError(args, 127, "", message=f"{describe or 'command'}: "
                           f"{args[0]} not found", hint=hint) from exc
    if on_line:
        stdout, stderr = _stream(proc, on_line), ""
    else:
        stdout, stderr = _wait(proc, input, timeout, heartbeat, describe or args[0])
    result = Result(tuple(args), proc.returncode, stdout, stderr)
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "a") as fh:
            fh.write(f"$ {shlex.join(args)}\n{result.stdout}{result.stderr}\n")
    log.debug("exit %d", proc.returncode)
    if check and proc.returncode != 0:
        what = describe or Path(args[0]).name
        raise CommandError(args, proc.returncode, result.output,
                           message=f"{what} failed (exit {proc.returncode}): {shlex.join(args[:6])}"
                           + (" ..." if len(args) > 6 else ""),
                           hint=hint, log=str(logfile) if logfile else None)
    return result
