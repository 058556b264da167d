"""The build: real EasyBuild over easyconfigs/, modules under PREFIX.

Only modules whose easyconfig differs from the copy EasyBuild keeps in the
install (PREFIX/software/NAME/VERSION/easybuild/) are built; a failed build
leaves nothing loadable and no half-filled install behind.

A module that depends on a rebuilt one is not rebuilt when its own
easyconfig is unchanged: the two meet only at load time (Lmod loads the
dependency by the same name and version, PYTHONPATH joins them), nothing of
the dependency is copied or compiled into the dependent's install, and the
lock resolves the whole stack at once, so the dependent's requirements hold
against the dependency's new packages (the rebuilt module's own `pip check`
sees the dependent's packages only if it loads them, which it does not;
the dependent's requirements were checked by the resolver). A change that
does touch the dependent (a package moving between modules, a new
dependency) changes its easyconfig, and then it is rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from stackgen.common import layout
from stackgen.common.errors import CommandError, StackgenError
from stackgen.common.fsutil import write_atomic
from stackgen.common.run import clean_env, run
from stackgen.common.templating import environment
from stackgen.site.easyblocks import payload
from stackgen.site.easyblocks.contract import BuildContract, BuildStatus
from stackgen.site.fetch import digest_memo_path
from stackgen.site.prefix import Staging

log = logging.getLogger("stackgen.site.build")

# Lmod's record of what the calling shell has loaded; EasyBuild must start clean.
_LMOD_STATE = ("LOADEDMODULES", "_LMFILES_", "_ModuleTable", "__LMOD_REF_COUNT",
               "LMOD_FAMILY_", "EBROOT", "EBVERSION", "EBDEVEL")


@dataclass(frozen=True)
class Module:
    name: str
    version: str
    easyconfig: Path
    depends: tuple[str, ...] = ()     # names of the stack modules it loads

    @classmethod
    def of_plan(cls, plan, easyconfigs: Path) -> Module:
        """The module a render.ModulePlan describes, its easyconfig in `easyconfigs`."""
        return cls(plan.name, plan.version, easyconfigs / f"{plan.name}-{plan.version}.eb",
                   depends=tuple(name for name, _ in plan.depends))

    @property
    def full_name(self) -> str:
        return f"{self.name}/{self.version}"

    def installdir(self, prefix: Path) -> Path:
        return layout.install_dir(prefix, self.name, self.version)

    def modulefile(self, prefix: Path) -> Path:
        return layout.module_file(prefix, self.name, self.version)

    def installed_easyconfig(self, prefix: Path) -> Path:
        return self.installdir(prefix) / "easybuild" / self.easyconfig.name


def needs_build(module: Module, prefix: Path, base_modulepath: tuple[Path, ...] = ()) -> str | None:
    """Why `module` must be (re)built, or None when its install is current;
    its module file must find the base in `base_modulepath` (stack.yaml's)."""
    if not module.modulefile(prefix).exists():
        return "not installed"
    installed = module.installed_easyconfig(prefix)
    if not installed.exists():
        return "installed by something else than this easyconfig"
    if installed.read_text() != module.easyconfig.read_text():
        return "its easyconfig changed"
    if not module.installdir(prefix).joinpath(*layout.EASYCONFIG_DIGEST).exists():
        return "installed by an older stackgen (no easyconfig digest for users' overlays)"
    recorded = module.installdir(prefix).joinpath(*layout.BASE_MODULEPATH)
    if not recorded.exists():
        return "installed by an older stackgen (its module file does not find the base itself)"
    if recorded.read_text() != base_modulepath_text(base_modulepath):
        return "the base is found elsewhere now (base.modulepath)"
    user_code = module.installdir(prefix).joinpath(*layout.USER_CODE, "stackgen")
    if user_code.is_dir() and payload.user_side_digest(user_code) != _user_side_now():
        return "stackgen's user side (user commands, session) changed since it was installed"
    return None


@functools.cache
def _user_side_now() -> str:
    """The digest of the user side of the stackgen that builds now."""
    return payload.user_side_digest(Path(__file__).resolve().parent.parent)


def base_modulepath_text(modulepath: tuple[Path, ...]) -> str:
    """What an install records of the base's modulepath its module file uses."""
    return "".join(f"{p}\n" for p in modulepath)


@dataclass(frozen=True)
class EasyBuild:
    """How to run eb for one prefix: paths, options, environment."""

    prefix: Path
    easyconfigs: Path
    wheelhouse: Path
    workdir: Path
    modulepath: tuple[Path, ...]
    base_module: str
    base_python: str                  # "3.11.7", from the lock header
    node_bin: Path | None = None      # for source-only lab extensions
    uv: str | None = None             # the bundle's one-shot installer; pip without it
    base_interpreter: Path | None = None   # the base module's python3: installs start early
    recheck: bool = False             # check every module, whatever passed before

    def options(self, installpath: Path | None = None, buildpath: Path | None = None) -> list[str]:
        """eb's options; it installs into `installpath` (a staging folder
        beside the prefix, see stackgen.site.prefix), else the prefix, and
        builds in `buildpath`, a folder of this run's own (builds of other
        prefixes on the host, or of other modules, never share one)."""
        easyblock = resources.files("stackgen.site.easyblocks") / "stackgenbundle.py"
        plugins = resources.files("stackgen.site") / "eb_plugins"
        # no --robot: stackgen orders the builds itself, and a run whose
        # dependencies are still being built must not build them again
        opts = [
            f"--installpath={installpath or self.prefix}",
            f"--sourcepath={self.wheelhouse}",
            f"--buildpath={buildpath or self.workdir / 'build'}",
            f"--tmpdir={self.workdir / 'tmp'}",
            f"--repositorypath={self.workdir / 'ebfiles_repo'}",
            f"--external-modules-metadata={self.workdir / 'external_modules_metadata.ini'}",
            f"--include-easyblocks={easyblock}",
            f"--include-module-naming-schemes={plugins}/*.py",
            "--module-naming-scheme=StackgenMNS",
            "--modules-tool=Lmod", "--module-syntax=Lua",
            "--disable-trace", "--umask=022", "--detect-loaded-modules=purge",
            # rich's output wraps a message at 80 columns when not on a terminal,
            # and stackgen shows only the "== " lines: one line per message
            "--output-style=no_color",
            # wheels only: nothing is compiled or linked, so EasyBuild's RPATH
            # compiler wrappers and its RPATH check of bin/ have nothing to do
            "--disable-rpath",
            # stackgen decides what to build: the module it rebuilds is still in
            # the prefix (on MODULEPATH) until the new one is swapped in
            "--rebuild",
        ]
        if os.geteuid() == 0:
            opts.append("--allow-use-as-root-and-accept-consequences")
        return opts

    def environment(self, lmod_cmd: str, contract: BuildContract | None = None) -> dict[str, str]:
        env = {k: v for k, v in clean_env().items() if not k.startswith(_LMOD_STATE)}
        system = [p for p in os.environ.get("MODULEPATH", "").split(":") if p]
        env["MODULEPATH"] = ":".join(dict.fromkeys([str(self.prefix.joinpath(*layout.MODULEPATH)),
                                                    *map(str, self.modulepath), *system]))
        env["LMOD_CMD"] = lmod_cmd
        env["EB_PYTHON"] = sys.executable
        env.pop("PYTHONOPTIMIZE", None)
        env.update(eb_environment())
        env["PIP_NO_INDEX"] = "1"
        env.update((contract or self.contract()).to_environ())
        return env

    def contract(self) -> BuildContract:
        """What every eb run of this build is told (build_one adds its waits)."""
        lab = bool(self.node_bin)
        return BuildContract(
            final_prefix=str(self.prefix), uv=self.uv or "",
            uv_cache=str(self.workdir / "uv-cache") if self.uv else "",
            bytecode_cache=str(self.workdir / "bytecode") if self.uv else "",
            base_python=str(self.base_interpreter or ""), node_bin=str(self.node_bin or ""),
            base_modulepath=os.pathsep.join(map(str, self.modulepath)),
            yarn_cache=str(self.workdir / "yarn-cache") if lab else "",
            lab_cache=str(self.workdir / "lab-extensions") if lab else "",
            check_cache=str(self.workdir / "checks-passed"), recheck=int(self.recheck),
            digest_memo=str(digest_memo_path()))

    def write_metadata(self) -> None:
        """EasyBuild must know the external base module is Python X.Y.Z."""
        text = environment().get_template("external_modules_metadata.ini.j2").render(
            base_module=self.base_module, base_python=self.base_python)
        write_atomic(self.workdir / "external_modules_metadata.ini", text)


# Caches an older stackgen kept in its eb folder and no longer reads: removed
# whatever their age (lab-builds: the app dirs of the core rebuilds that
# prebuilt source extensions replaced).
RETIRED_CACHES = ("lab-builds",)


def prune_cache(workdir: Path, keep_days: float = 30, now: float | None = None) -> list[Path]:
    """EasyBuild removes its temporary folder after a successful run and keeps
    it, with the log the failure message points at, after a failed one; a
    build_modules status folder and a run's build folder outlive a `stackgen
    build` that was killed: drop those older than `keep_days` (in `workdir`'s
    tmp/ and build/), before they pile up in the cache, and RETIRED_CACHES.
    Compiled bytecode no install shares (one link) and unused for as long
    goes too (a later build compiles it again)."""
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    patterns = ("tmp/eb-*", f"tmp/{BuildStatus.PREFIX}*", "build/*")
    old = [p for pattern in patterns for p in Path(workdir).glob(pattern)
           if p.is_dir() and p.stat().st_mtime < cutoff]
    old += [p for p in map(Path(workdir).joinpath, RETIRED_CACHES) if p.is_dir()]
    for folder in old:
        shutil.rmtree(folder, ignore_errors=True)
    return old + _prune_bytecode(Path(workdir) / "bytecode", cutoff)


def _prune_bytecode(cache: Path, cutoff: float) -> list[Path]:
    dropped = []
    for entry in cache.glob("*/*.pyc"):
        with contextlib.suppress(OSError):
            st = entry.stat()
            if st.st_nlink == 1 and max(st.st_atime, st.st_mtime) < cutoff:
                entry.unlink()
                dropped.append(entry)
    return dropped


def eb_argv() -> list[str]:
    """EasyBuild's main (through stackgen.site.ebmain), run by stackgen's own
    Python with the environment its `eb` script would set (eb_environment).
    The script itself spends a third of a second per run finding a Python
    (three interpreter starts) before it runs the same module."""
    script = Path(sys.executable).parent / "eb"
    if not script.exists() or importlib.util.find_spec("easybuild.main") is None:
        raise StackgenError("EasyBuild (easybuild-framework) is not installed beside stackgen",
                            "install stackgen's dependencies (./bootstrap env)")
    return [sys.executable, "-m", "stackgen.site.ebmain"]


def eb_environment() -> dict[str, str]:
    """What EasyBuild's `eb` script exports before it runs easybuild.main,
    but PYTHONOPTIMIZE=1: stackgen's environment holds plain .pyc files
    only and runs commands with PYTHONDONTWRITEBYTECODE, so under -O every
    run compiled EasyBuild's 140 modules from source (0.33 s of a 0.6 s
    start-up, measured)."""
    return {"FANCYLOGGER_IGNORE_MPI4PY": "1",
            "EB_SCRIPT_PATH": str(Path(sys.executable).parent / "eb")}


def uv_command() -> str | None:
    """uv from stackgen's own environment, for StackgenBundle's one-shot
    install; None (the easyblock then uses the base's pip) when it is absent."""
    try:
        from uv import find_uv_bin
        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


# A run that waits for others installs at a lower CPU priority, one step per
# level of waiting: the runs it waits for, and their installs, come first.
INSTALL_NICENESS_STEP = 7


def build_modules(eb: EasyBuild, todo: list[tuple[Module, str]], lmod_cmd: str,
                  progress: Callable[[str], None], jobs: int = 4,
                  start_early: bool = True, run_one: Callable[..., None] | None = None) -> None:
    """Build every module in `todo` ((module, why)), each by its own eb run,
    up to `jobs` runs at once. A run starts once every module it loads is
    built or being built: its EasyBuild starts, verifies and installs the
    wheels (StackgenBundle starts the install in the ready step), then waits
    for the modules it loads (named in its BuildContract, each marked built
    or failed in a BuildStatus folder as its run ends) before it loads
    them, checks the install and writes the module file. The chain of
    dependencies then costs only the checks, not the installs. Without
    `start_early` (an easyblock that cannot wait: stock PythonBundle) a run
    starts once the modules it loads are built.
    The first failure lets the running builds end (those waiting for the
    failed module fail at once) and starts no new one, then is raised.

    Each run installs into a staging folder beside the prefix and its module
    is swapped in whole when it succeeded (stackgen.site.prefix): the module
    being rebuilt stays loadable meanwhile, and a failed run leaves the
    prefix as it was. `run_one` runs one
    module's build (build_one; the build-order tests pass a stand-in)."""
    jobs = max(1, jobs)
    pending = dict(todo)
    running: dict[Future, Module] = {}
    failure: BaseException | None = None
    lock = threading.Lock()
    (eb.workdir / "tmp").mkdir(parents=True, exist_ok=True)
    status = BuildStatus(Path(tempfile.mkdtemp(prefix=BuildStatus.PREFIX, dir=eb.workdir / "tmp")))

    def say(message: str) -> None:
        with lock:
            progress(message)

    def ready(module: Module) -> bool:
        unbuilt = [*pending, *([] if start_early else running.values())]
        return not {m.name for m in unbuilt}.intersection(module.depends)

    levels: dict[str, int] = {}      # how many runs deep a run waits

    def start(module: Module) -> Future:
        waits_for = [m for m in running.values() if m.name in module.depends]
        levels[module.name] = 1 + max((levels[m.name] for m in waits_for), default=-1)
        return pool.submit(run_one or build_one, eb, module, pending.pop(module), lmod_cmd, say,
                           tuple(m.full_name for m in waits_for), status,
                           INSTALL_NICENESS_STEP * levels[module.name])

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while pending or running:
                while failure is None and len(running) < jobs:
                    module = next((m for m in pending if ready(m)), None)
                    if module is None:
                        break
                    running[start(module)] = module
                if not running:
                    break          # nothing can start: a failure, or a dependency cycle
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    module = running.pop(future)
                    ok = future.exception() is None
                    status.mark(module.full_name, built=ok)
                    if not ok and failure is None:
                        failure = future.exception()
    finally:
        shutil.rmtree(status.folder, ignore_errors=True)
    if failure is not None:
        raise failure
    if pending:          # stack.yaml's validation refuses cycles; this is a guard
        raise StackgenError("modules waiting on each other: "
                            + ", ".join(m.full_name for m in pending),
                            "check the modules' depends in stack.yaml")


def build_one(eb: EasyBuild, module: Module, why: str, lmod_cmd: str,
              progress: Callable[[str], None], awaits: tuple[str, ...] = (),
              status: BuildStatus | None = None, niceness: int = 0) -> None:
    """One eb run for one module, into a staging folder beside the prefix,
    swapped in whole when it succeeded (the previous install stays loadable
    until then); it waits for the modules in `awaits` to be marked built in
    `status`, and installs with `niceness` meanwhile."""
    step = re.compile(r"^== (.*)$")

    def show(line: str) -> None:
        match = step.match(line)
        if match and not match.group(1).startswith(("\t", "Temporary", "temporary", "Summary",
                                                      "Results of", "restore after")):
            progress(f"{module.full_name}: {match.group(1)}")

    progress(f"building {module.full_name} ({why})")
    staging = Staging.make(eb.prefix, module.name, module.version)
    contract = eb.contract()
    if awaits and status:
        contract = replace(contract, await_modules=awaits, build_status=str(status.folder),
                           install_niceness=min(19, niceness))
    env = eb.environment(lmod_cmd, contract)
    buildpath = eb.workdir / "build" / staging.build_id
    try:
        run([*eb_argv(), str(module.easyconfig),
             *eb.options(installpath=staging.root, buildpath=buildpath)],
            env=env, cwd=eb.workdir,
            describe=f"EasyBuild for {module.full_name}", on_line=show,
            logfile=eb.workdir / f"stackgen-eb-{module.name}.log")
        staging.swap_in()
    except BaseException as exc:
        staging.drop()
        if isinstance(exc, CommandError):
            raise _explain(module, exc) from None
        raise
    finally:
        shutil.rmtree(buildpath, ignore_errors=True)


def _explain(module: Module, exc: CommandError) -> StackgenError:
    lines = exc.output.splitlines()
    logs = re.findall(r"(/\S+?easybuild-\S+?\.log)", exc.output)
    errors = [ln.strip() for ln in lines if re.search(r"ERROR|FAILED|failed|Error:", ln)]
    text = f"EasyBuild failed to build {module.full_name} (exit {exc.returncode})"
    if errors:
        text += ":\n" + "\n".join("    " + ln[:400] for ln in list(dict.fromkeys(errors))[-8:])
    if logs:
        text += f"\n  EasyBuild log: {logs[-1]}"
    return StackgenError(text, "nothing of this module was made visible to users; fix the cause "
                               "and run stackgen build again")
