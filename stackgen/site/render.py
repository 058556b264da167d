"""Spec + lock -> easyconfigs: pure, deterministic text.

Which locked package goes into which module, in what order, under which
import name; the text itself is in templates/.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from stackgen import __version__
from stackgen.common import layout
from stackgen.common.templating import environment
from stackgen.session.daskctx import DASHBOARD_PATH
from stackgen.site import modulehelp
from stackgen.site.lockfile import Lock, LockedPackage
from stackgen.site.spec import Stack

EASYBLOCK = "StackgenBundle"
COMMON_SUFFIX = "-common"

# Packages whose bare import fails in a correct stack, and why; their import
# check is skipped (the reason is written next to it in the easyconfig).
IMPORT_EXEMPT = {
    "matplotlib-inline": "imports matplotlib, which the stack need not contain",
}


@dataclass(frozen=True)
class Ext:
    name: str
    version: str
    file: str
    sha256: str
    modulename: str | None
    exempt: str = ""


@dataclass(frozen=True)
class ModulePlan:
    name: str
    version: str
    description: str
    depends: tuple[tuple[str, str], ...]           # (name, version), stack modules
    packages: tuple[LockedPackage, ...]            # install order

    @property
    def holds_jupyterlab(self) -> bool:
        """The module with JupyterLab's app dir: site settings, source
        extensions, the user command and kernels go there."""
        return any(p.name == "jupyterlab" for p in self.packages)


def plan(stack: Stack, lock: Lock) -> list[ModulePlan]:
    """Each locked package in exactly one module: the lowest stack module that
    needs it; packages needed by modules that do not depend on each other go
    into a shared `<stack>-common` module that those modules load."""
    by_name = {p.name: p for p in lock.packages}
    closure = {m.name: _closure([p.name for p in m.pins if p.name in by_name], by_name)
               for m in stack.modules}
    below = {m.name: _module_deps(stack, m.name) for m in stack.modules}
    owner: dict[str, str] = {}
    for pkg in by_name:
        needers = [m for m in closure if pkg in closure[m]]
        lowest = [m for m in needers if not any(o in below[m] for o in needers if o != m)]
        owner[pkg] = lowest[0] if len(lowest) == 1 else stack.name + COMMON_SUFFIX
    common = stack.name + COMMON_SUFFIX
    plans = []
    if common in owner.values():
        plans.append(ModulePlan(common, stack.version,
                                f"Packages shared by several modules of the {stack.name} stack",
                                (), _ordered([p for n, p in by_name.items() if owner[n] == common])))
    for m in stack.modules:
        deps = [(d, stack.module(d).version) for d in m.depends]
        if any(owner[n] == common for n in closure[m.name]) and not any(
                any(owner[n] == common for n in closure[d]) for d in below[m.name]):
            deps.insert(0, (common, stack.version))
        plans.append(ModulePlan(m.name, m.version, m.description or f"{m.name} ({stack.name} stack)",
                                tuple(deps),
                                _ordered([p for n, p in by_name.items() if owner[n] == m.name])))
    return plans


def _closure(roots: list[str], by_name: dict[str, LockedPackage]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(by_name[name].requires)
    return seen


def _module_deps(stack: Stack, name: str) -> set[str]:
    out: set[str] = set()
    todo = list(stack.module(name).depends)
    while todo:
        dep = todo.pop()
        if dep not in out:
            out.add(dep)
            todo.extend(stack.module(dep).depends)
    return out


def _ordered(packages: list[LockedPackage]) -> tuple[LockedPackage, ...]:
    """Dependencies before dependents; ties by name."""
    inside = {p.name: p for p in packages}
    placed: list[LockedPackage] = []
    done: set[str] = set()
    while len(placed) < len(inside):
        ready = sorted(n for n, p in inside.items() if n not in done
                       and all(r in done or r not in inside for r in p.requires))
        if not ready:        # a dependency cycle: break it at the first name
            ready = [min(n for n in inside if n not in done)]
        for name in ready:
            placed.append(inside[name])
            done.add(name)
    return tuple(placed)


# Top-level names a wheel may carry besides its own package (nvidia-ml-py's
# example.py beside pynvml.py): never the import that checks the project.
STRAY_TOP_LEVEL = frozenset({
    "bench", "benchmark", "benchmarks", "conftest", "demo", "demos", "doc", "docs",
    "example", "examples", "sample", "samples", "script", "scripts", "setup", "test",
    "testing", "tests",
})


def modulename(pkg: LockedPackage, top_level: tuple[str, ...]) -> tuple[str | None, str]:
    """The name to import as a check, or None and the reason there is none:
    the top-level name that belongs to the project (its own name, else the
    public name most like it), never a stray one such as example or tests."""
    if pkg.name in IMPORT_EXEMPT:
        return None, IMPORT_EXEMPT[pkg.name]
    if not top_level:
        return None, "the wheel installs no importable top-level module"
    wanted = pkg.name.replace("-", "_")
    if wanted in top_level:
        return wanted, ""
    own = [n for n in top_level if n.lower() not in STRAY_TOP_LEVEL]
    if not own:
        return None, f"the wheel installs only {', '.join(top_level)}, none of them its own package"
    public = [n for n in own if not n.startswith("_")] or own
    return max(public, key=lambda n: (_likeness(pkg.name, n), -public.index(n))), ""


def _likeness(project: str, module: str) -> float:
    """How much a top-level name looks like the project's name, 0 to 1."""
    def letters(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum())
    return difflib.SequenceMatcher(None, letters(project), letters(module)).ratio()


def render(stack: Stack, lock: Lock, top_levels: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """File name -> easyconfig text for every module of the stack."""
    plans = plan(stack, lock)
    holder = {p.name: mp.name for mp in plans for p in mp.packages}
    out = {}
    for mp in plans:
        exts = []
        for pkg in mp.packages:
            name, why = modulename(pkg, top_levels.get(pkg.name, ()))
            exts.append(Ext(pkg.name, pkg.version, pkg.file, pkg.sha256, name, why))
        names = {p.name for p in mp.packages}
        lab = mp.holds_jupyterlab
        dask = "dask" in names and bool(stack.settings.dask)
        extensions = sorted(p.name for p in stack.pins if p.extension and holder.get(p.name) == mp.name)
        # source extensions are built into the app dir: where jupyterlab is
        sources = sorted(lock.npm, key=lambda n: n.name) if lab else []
        extensions += [n.name for n in sources]
        python_version = ".".join(lock.header.python_version.split(".")[:2])
        footer = environment().get_template("footer.lua.j2").render(
            lab_app_dir=lab, dask_config=dask, extensions=extensions, stack=stack.name,
            stack_version=stack.version, bundle_modules=_bundle_modules(plans, mp),
            python_version=python_version, module=f"{mp.name}/{mp.version}",
            paths=layout.footer_paths(python_version))
        text = environment().get_template("easyconfig.eb.j2").render(
            easyblock=EASYBLOCK, name=mp.name, version=mp.version, stack=stack.name,
            stack_version=stack.version, lock_name=stack.lock_name,
            homepage=modulehelp.homepage(stack, mp.name, names),
            description=mp.description,
            usage=_usage(stack, plans, mp, exts, lock), base_module=lock.header.base_module,
            depends=[{"name": n, "version": v} for n, v in mp.depends],
            site_files=site_files(stack, lab, dask), exts=exts, sources=sources,
            user_command=__version__ if lab else "", jupyter_env=layout.rel(layout.JUPYTER_ENV),
            env_file_timeout=stack.settings.singleuser.env_file_timeout,
            kernels=[{"name": k.name, "display_name": k.display_name, "modules": list(k.modules),
                      "env": dict(k.env)} for k in stack.kernels] if lab else [],
            footer=footer.strip())
        out[f"{mp.name}-{mp.version}.eb"] = text
    return out


def _usage(stack: Stack, plans: list[ModulePlan], mp: ModulePlan, exts: list[Ext],
           lock: Lock) -> str:
    """The Usage part of the module's help (modulehelp.usage)."""
    versions = {p.name: p.version for p in lock.packages}
    held = {p.name for p in mp.packages}
    extensions = [f"{p.name} {versions[p.name]}" for p in stack.pins
                  if p.extension and p.name in held]
    if mp.holds_jupyterlab:
        extensions += [f"{n.name} {n.version} (built from npm)" for n in lock.npm]
    own = {p.name for m in stack.modules if m.name == mp.name for p in m.pins}
    return modulehelp.usage(
        stack, f"{mp.name}/{mp.version}", lab=mp.holds_jupyterlab,
        common=mp.name == stack.name + COMMON_SUFFIX,
        loads=[f"{n}/{v}" for n, v in mp.depends],
        loaded_by=[f"{o.name}/{o.version}" for o in plans if any(d == mp.name for d, _ in o.depends)],
        imports=sorted({e.modulename for e in exts if e.name in own and e.modulename}),
        extensions=sorted(extensions))


def _bundle_modules(plans: list[ModulePlan], top: ModulePlan) -> list[dict]:
    """`top` and every stack module it loads, directly or not, in plan order."""
    by_name = {mp.name: mp for mp in plans}
    wanted, todo = set(), [top.name]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(d for d, _ in by_name[name].depends if d in by_name)
    return [{"name": mp.name, "version": mp.version} for mp in plans if mp.name in wanted]


# dask-labextension finds the session's scheduler dashboard where the session's
# server proxies it (stackgen.session.daskctx.DASHBOARD_PATH), relative to the
# server's base URL, which the extension resolves per user.
DASK_LAB_PLUGIN = "dask-labextension:plugin"
DASK_DEFAULT_URL = DASHBOARD_PATH + "/"


def lab_overrides(stack: Stack) -> dict:
    """The site's overrides.json, with dask-labextension's defaultURL when the
    stack has the extension (a site's own value for it wins)."""
    overrides = {k: dict(v) for k, v in stack.settings.lab.overrides.items()}
    if any(p.name == "dask-labextension" for p in stack.pins):
        overrides.setdefault(DASK_LAB_PLUGIN, {}).setdefault("defaultURL", DASK_DEFAULT_URL)
    return overrides


# stack.yaml's parallel section as dask-jobqueue's SLURMCluster reads it
JOBQUEUE_KEYS = {"partition": "queue", "account": "account", "time_limit": "walltime",
                 "cores": "cores", "memory": "memory", "interface": "interface"}


def dask_config(stack: Stack) -> dict:
    """The site's dask config, with the site's Slurm defaults as
    `jobqueue.slurm` (so SLURMCluster() needs no arguments); a value the
    site's own dask settings give wins."""
    parallel = stack.parallel.to_dict()
    slurm = {JOBQUEUE_KEYS[k]: parallel[k] for k in sorted(JOBQUEUE_KEYS) if parallel[k]}
    config = json.loads(json.dumps(stack.settings.dask))
    if slurm:
        own = config.setdefault("jobqueue", {}).setdefault("slurm", {})
        for key, value in slurm.items():
            own.setdefault(key, value)
    return config


def site_files(stack: Stack, lab: bool, dask: bool) -> dict:
    files = {}
    if lab:
        lab_settings = stack.settings.lab
        # LabApp reads its options from jupyter_lab_config files, not from the
        # server's config.d folder (a LabApp key there is ignored)
        files[layout.rel((*layout.JUPYTER_CONFIG, "jupyter_lab_config.json"))] = {
            "LabApp": {"extension_manager": lab_settings.extension_manager}}
        overrides = lab_overrides(stack)
        if overrides:
            files[layout.rel((*layout.LAB_SETTINGS, "overrides.json"))] = overrides
        if lab_settings.page_config:
            files[layout.rel((*layout.LAB_SETTINGS, "page_config.json"))] = lab_settings.page_config
        # read by the session side (stackgen parallel) through STACKGEN_PARALLEL_DEFAULTS
        files[layout.rel(layout.PARALLEL_DEFAULTS)] = stack.parallel.to_dict()
    if dask:
        files[layout.rel((*layout.DASK_CONFIG, "stackgen-site.json"))] = dask_config(stack)
    return files


