"""Resolvers: pip-tools (the reference) and uv (the fast one).

Both resolve for the base interpreter, with the base's packages as fixed
constraints, from PyPI alone, and give back the same thing: pins with the
hashes of every file of each release.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from stackgen.common.errors import CommandError, InputError, StackgenError
from stackgen.common.pypi import INDEX_URL, conflict_lines, unfound_projects
from stackgen.common.run import clean_env, run
from stackgen.site.base import Base

log = logging.getLogger("stackgen.site.resolvers")


class NotOnPyPI(InputError):
    """Requirements naming projects PyPI does not have at all; the lock stage
    names each one's line in stack.yaml."""

    def __init__(self, resolver: str, names: list[str]):
        super().__init__(f"no project named {', '.join(names)} on PyPI ({resolver})")
        self.resolver, self.names = resolver, names


@dataclass(frozen=True)
class Resolved:
    name: str
    version: str
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """What to resolve: requirement lines, fixed constraints, earlier pins."""

    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    previous: str | None = None          # an earlier lock's text: keep its pins
    upgrade: tuple[str, ...] = ()        # --upgrade-package names
    upgrade_all: bool = False


def uv_bin() -> str:
    try:
        from uv import find_uv_bin
        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        raise StackgenError("uv is not installed in stackgen's environment",
                            "install stackgen's pinned dependencies (./bootstrap env)") from None


def resolver_version(name: str) -> str:
    if name == "uv":
        out = run([uv_bin(), "--version"], env=clean_env()).stdout.split()
        return f"uv {out[1]}" if len(out) > 1 else "uv"
    return f"pip-tools {metadata.version('pip-tools')}"


def resolve(name: str, request: Request, base: Base, workdir: Path, cache: Path,
            heartbeat: Callable[[float], None] | None = None) -> list[Resolved]:
    """Resolve `request` for `base` with resolver `name`; conflicts become InputError."""
    workdir.mkdir(parents=True, exist_ok=True)
    infile = workdir / "requirements.in"
    constraints = workdir / "constraints.txt"
    outfile = workdir / "resolved.txt"
    constraints.write_text("".join(f"{c}\n" for c in request.constraints))
    infile.write_text(f"-c {constraints.name}\n" + "".join(f"{r}\n" for r in request.requirements))
    if request.previous and not request.upgrade_all:
        outfile.write_text(request.previous)    # both resolvers keep pins found here
    elif outfile.exists():
        outfile.unlink()
    upgrades = [arg for pkg in request.upgrade for arg in ("--upgrade-package", pkg)]
    if request.upgrade_all:
        upgrades.append("--upgrade")
    if name == "uv":
        argv = [uv_bin(), "pip", "compile", "--no-config", "--quiet", "--no-header",
                "--generate-hashes", "--no-annotate", "--index-url", INDEX_URL,
                "--python", str(base.python), "--cache-dir", str(cache / "uv"),
                "-o", outfile.name, *upgrades, infile.name]
    else:
        python = pip_tools_python(base, cache)
        argv = [str(python), "-m", "piptools", "compile", "--quiet", "--no-header",
                "--generate-hashes", "--no-annotate", "--allow-unsafe", "--strip-extras",
                "--no-emit-index-url", "--no-emit-trusted-host", "--no-emit-find-links",
                "--index-url", INDEX_URL, "--cache-dir", str(cache / "pip-tools"),
                "-o", outfile.name, *upgrades, infile.name]
    env = clean_env(base.env, PIP_CACHE_DIR=str(cache / "pip"))
    try:
        run(argv, env=env, cwd=workdir, describe=f"resolving with {name}",
            logfile=workdir / "resolver.log", heartbeat=heartbeat)
    except CommandError as exc:
        lines = infile.read_text().splitlines()
        output = re.sub(r"-r requirements\.in \(line (\d+)\)",
                        lambda m: lines[int(m.group(1)) - 1], exc.output)
        absent = [project for project in unfound_projects(output) if on_pypi(project) is False]
        if absent:
            raise NotOnPyPI(name, absent) from None
        raise explain_conflict(name, output) from None
    return parse_resolved(outfile.read_text())


_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def parse_resolved(text: str) -> list[Resolved]:
    """pins and hashes out of pip-tools' or uv's requirements output."""
    out: list[Resolved] = []
    name = version = None
    hashes: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.strip().startswith("#") else ""
        if not line:
            continue
        match = _LINE.match(line)
        if match and not raw.startswith(" "):
            if name:
                out.append(Resolved(name, version, tuple(sorted(hashes))))
            name, version, hashes = canonicalize_name(match.group(1)), match.group(3), []
            line = line[match.end():]
        for token in line.replace("\\", " ").split():
            if token.startswith("--hash="):
                hashes.append(token[len("--hash="):])
    if name:
        out.append(Resolved(name, version, tuple(sorted(hashes))))
    return out


def pip_tools_python(base: Base, cache: Path) -> Path:
    """A venv made by the base interpreter holding pip-tools, so resolution
    happens for the target Python (markers, tags) without touching the base."""
    pins = [f"pip-tools=={metadata.version('pip-tools')}", f"pip=={metadata.version('pip')}"]
    key = hashlib.sha256(f"{base.python}|{base.identity.digest()}|{pins}".encode()).hexdigest()[:16]
    venv = cache / "resolvers" / f"pip-tools-{key}"
    python = venv / "bin" / "python"
    stamp = venv / ".stackgen-ready"
    if stamp.exists():
        return python
    log.info("making the pip-tools environment for %s", base.identity.module)
    shutil.rmtree(venv, ignore_errors=True)
    try:
        run([str(base.python), "-m", "venv", "--without-pip", str(venv)], env=base.env,
            describe="making the pip-tools environment")
        run([uv_bin(), "pip", "install", "--no-config", "--quiet", "--index-url", INDEX_URL,
             "--python", str(python), "--cache-dir", str(cache / "uv"), *pins],
            env=clean_env(), describe="installing pip-tools for the base interpreter")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    stamp.write_text(" ".join(pins) + "\n")
    return python


def on_pypi(project: str) -> bool | None:
    """Whether PyPI has a project of that name (None: could not ask). A
    resolver that found no release of a name may mean no file fits the base."""
    request = urllib.request.Request(f"{INDEX_URL}/{project}/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=20):
            return True
    except urllib.error.HTTPError as exc:
        return False if exc.code == 404 else None
    except (urllib.error.URLError, OSError):
        return None


def explain_conflict(resolver: str, output: str) -> StackgenError:
    """A few lines naming the requirements that clash, not pip's whole output."""
    lines = [ln.rstrip() for ln in output.splitlines()]
    picked = conflict_lines(output)
    if not picked:
        tail = "\n".join("    " + ln for ln in lines[-12:] if ln.strip())
        return StackgenError(f"resolution with {resolver} failed:\n{tail}",
                             "see the resolver's output above; run with --debug for all of it")
    body = "\n".join("    " + ln for ln in picked)
    return InputError(f"the stack's requirements cannot be resolved together ({resolver}):\n{body}",
                      "relax or change the clashing requirement in stack.yaml; packages the "
                      "base provides (base-provides in the lock) are fixed at the base's version")
