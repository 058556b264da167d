"""The one contract between `stackgen build` and each eb run's
StackgenBundle: what the build tells the easyblock (a typed object that
travels in the environment, since EasyBuild starts the easyblock), and the
marks by which runs building side by side wait for each other.

Both sides import this module; neither writes a STACKGEN_* name itself.
Nothing here imports EasyBuild."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

AWAIT_POLL = 0.05         # seconds between looks at the status folder


@dataclass(frozen=True)
class BuildContract:
    """What one eb run is told. Every field is optional: EasyBuild run by
    hand on a rendered easyconfig sets none and still builds (pip installs,
    no waiting, node from PATH, nothing cached)."""

    # the prefix users load the module from: EasyBuild installs into a staging
    # folder beside it, and what the install names (launchers, kernels) must
    # name where it will be
    final_prefix: str = ""
    # the one-shot installer (uv from stackgen's environment) and its cache of
    # unpacked wheels, copied from there into every install
    uv: str = ""
    uv_cache: str = ""
    # compiled bytecode kept by the digest of each source (with uv only:
    # easyblocks/bytecode.py)
    bytecode_cache: str = ""
    # the base's python: the wheels are installed from the ready step on,
    # before the base module is loaded
    base_python: str = ""
    # stack.yaml's base.modulepath (absolute, ":"-joined): every module file
    # puts it on MODULEPATH before it loads the base, unless a base is loaded,
    # so `module use PREFIX/modules/all` is all a user needs
    base_modulepath: str = ""
    # node for source-only lab extensions and yarn's cache (filled only
    # from the lock's verified tarballs: stackgen.common.labbuild)
    node_bin: str = ""
    yarn_cache: str = ""
    # prebuilt source extensions kept by the digest of their inputs, taken
    # from there by every later build of the same inputs
    lab_cache: str = ""
    # the stack modules this run waits for (built by other runs of the same
    # `stackgen build`, "name/version"), the folder of their marks, and the
    # niceness of this run's install meanwhile
    await_modules: tuple[str, ...] = ()
    build_status: str = ""
    install_niceness: int = 0
    # where a module's passed import and pip checks are recorded by the digest
    # of their inputs, and whether to check again all the same (--recheck)
    check_cache: str = ""
    recheck: int = 0
    # the digests stackgen took of the wheelhouse's files, with their stat
    # data (stackgen.common.download.DigestMemo): a source unchanged since
    # is not hashed again by EasyBuild's checksum check
    digest_memo: str = ""

    def to_environ(self) -> dict[str, str]:
        """The variables that carry this contract; unset fields are left out."""
        env = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value:
                env[_variable(field.name)] = ",".join(value) if isinstance(value, tuple) \
                    else str(value)
        return env

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> BuildContract:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in fields(cls):
            text = env.get(_variable(field.name), "")
            if field.name == "await_modules":
                values[field.name] = tuple(m for m in text.split(",") if m)
            elif field.name == "install_niceness":
                values[field.name] = min(19, max(0, int(text or 0)))
            elif field.type == "int":
                values[field.name] = int(text or 0)
            else:
                values[field.name] = text
        return cls(**values)


def _variable(field: str) -> str:
    return "STACKGEN_" + field.upper()


VARIABLES = tuple(_variable(f.name) for f in fields(BuildContract))


class NotBuilt(Exception):
    """A module a run waits for will not be built (failed, or the build that
    started the run is gone)."""


@dataclass(frozen=True)
class BuildStatus:
    """The folder where `stackgen build` marks each module NAME-VERSION.built
    or .failed as its run ends, for the runs waiting for it."""

    PREFIX = "stackgen-status-"       # its name in eb/tmp/, pruned with failed runs

    folder: Path

    def _mark(self, module: str, state: str) -> Path:
        return Path(self.folder) / f"{module.replace('/', '-')}.{state}"

    def mark(self, module: str, built: bool) -> None:
        """Mark `module` ("name/version") built or failed."""
        self._mark(module, "built" if built else "failed").touch()

    def wait_for(self, modules: tuple[str, ...] | list[str], alive: Callable[[], bool],
                 poll: float = AWAIT_POLL) -> None:
        """Return once each of `modules` is marked built; raise NotBuilt when
        one is marked failed, or when the folder is gone or `alive()` is
        false (whoever set the wait ended without marking: a run must not
        wait for ever)."""
        waiting = list(modules)
        while True:
            for module in list(waiting):
                if self._mark(module, "failed").exists():
                    raise NotBuilt(f"not built: {module}, which this module loads, failed to build")
                if self._mark(module, "built").exists():
                    waiting.remove(module)
            if not waiting:
                return
            if not Path(self.folder).is_dir() or not alive():
                raise NotBuilt(f"not built: {', '.join(waiting)}, which this module loads; the "
                               "stackgen build that started this run has ended")
            time.sleep(poll)
