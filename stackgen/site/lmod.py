"""Lmod, driven through its own command (`$LMOD_CMD python ...`), as
Lmod's env_modules_python.py does: load modules, get the environment back."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from stackgen.common.errors import CommandError, StackgenError
from stackgen.common.run import run

# Where Debian's lmod package (and most sites) put the command.
_KNOWN = ("/usr/share/lmod/lmod/libexec/lmod", "/opt/apps/lmod/lmod/libexec/lmod",
          "/usr/local/lmod/lmod/libexec/lmod")


def lmod_cmd(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    for candidate in (env.get("LMOD_CMD"), *_KNOWN):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise StackgenError("Lmod not found (no $LMOD_CMD, nothing in the usual places)",
                        "install Lmod (Debian: apt-get install lmod) or run ./bootstrap, "
                        "which installs it")


def load(modules: Sequence[str], modulepath: Sequence[Path] = (),
         env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment after `module use <modulepath>; module load <modules>`."""
    env = dict(os.environ if env is None else env)
    paths = [str(p) for p in modulepath] + [p for p in env.get("MODULEPATH", "").split(":") if p]
    env["MODULEPATH"] = ":".join(dict.fromkeys(paths))
    env.setdefault("LMOD_ALLOW_ROOT_USE", "yes")
    try:
        result = run([lmod_cmd(env), "python", "load", *modules], env=env,
                     describe=f"module load {' '.join(modules)}")
    except CommandError as exc:
        raise StackgenError(
            f"module load {' '.join(modules)} failed: " + _lmod_message(exc.output),
            "check the module name and modulepath (base.module, base.modulepath in stack.yaml); "
            f"MODULEPATH was {env['MODULEPATH']}") from None
    return apply_python(result.stdout, env)


def apply_python(code: str, env: dict[str, str]) -> dict[str, str]:
    """Apply Lmod's python-mode output (os.environ assignments) to a copy of env."""
    out = dict(env)
    for line in code.splitlines():
        match = re.match(r'os\.environ\[("(?:[^"\\]|\\.)*")\] = ("(?:[^"\\]|\\.)*");?$', line.strip())
        if match:
            out[_unquote(match.group(1))] = _unquote(match.group(2))
            continue
        match = re.match(r'del os\.environ\[("(?:[^"\\]|\\.)*")\];?$', line.strip())
        if match:
            out.pop(_unquote(match.group(1)), None)
    return out


def _unquote(text: str) -> str:
    import ast
    return ast.literal_eval(text)


def _lmod_message(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("_mlstatus")]
    return " ".join(lines[:3]) or "Lmod gave no reason"


def which(program: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(program, path=env.get("PATH", ""))
