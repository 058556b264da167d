"""The base: the Python module the stack is built on, found through Lmod.

Its identity (Python version, platform, the packages it already has) goes
into the lock header; its packages are fixed constraints, never reinstalled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.errors import StackgenError
from stackgen.common.run import clean_env, run
from stackgen.site import lmod
from stackgen.site.spec import BaseSpec

# Run inside the base interpreter: who it is and what it already has.
_PROBE = r"""
import json, platform, sys, sysconfig
from importlib import metadata
dists = {}
for d in metadata.distributions():
    name = d.metadata["Name"]
    if name:
        dists[name] = d.version
impl = sys.implementation
print(json.dumps({
    "executable": sys.executable,
    "python": platform.python_version(),
    "implementation": impl.name,
    "platform": sysconfig.get_platform(),
    "markers": {
        "implementation_name": impl.name,
        "implementation_version": "{0.major}.{0.minor}.{0.micro}".format(impl.version),
        "os_name": __import__("os").name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": "",
        "platform_system": platform.system(),
        "platform_version": "",
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
    "packages": dists,
}))
"""


@dataclass(frozen=True)
class BaseIdentity:
    """What the lock depends on about the base; no machine paths."""

    module: str
    python: str                             # "3.11.7"
    implementation: str                     # "cpython"
    platform: str                           # "linux-x86_64"
    provides: tuple[tuple[str, str], ...]   # (canonical name, version), sorted

    def digest(self) -> str:
        blob = json.dumps([self.module, self.python, self.implementation, self.platform,
                           list(self.provides)], separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    def provided(self) -> dict[str, str]:
        return dict(self.provides)

    def constraints(self) -> list[str]:
        return [f"{name}=={version}" for name, version in self.provides]


@dataclass(frozen=True)
class Base:
    """A loaded base: its identity, its interpreter and the environment to run it in."""

    identity: BaseIdentity
    python: Path
    env: dict
    markers: dict


def load_base(spec: BaseSpec) -> Base:
    """Load the base module with Lmod and ask its python3 who it is."""
    env = clean_env(lmod.load([spec.module], spec.modulepath))
    python = lmod.which("python3", env)
    if python is None:
        raise StackgenError(f"module {spec.module} puts no python3 on PATH",
                            "base.module must name a Python module (cray-python on Cray systems)")
    result = run([python, "-I", "-c", _PROBE], env=env,
                 describe=f"probing the base interpreter of {spec.module}")
    info = json.loads(result.stdout)
    from packaging.utils import canonicalize_name
    provides = tuple(sorted((canonicalize_name(n), v) for n, v in info["packages"].items()))
    identity = BaseIdentity(module=spec.module, python=info["python"],
                            implementation=info["implementation"],
                            platform=info["platform"], provides=provides)
    return Base(identity=identity, python=Path(python), env=env, markers=info["markers"])
