"""The hub's configuration, from stack.yaml's hub section and the stack's lock:
the generated stackgen_hub_config.py (self-contained: stackgen.site.hubform
copied in, the site's choices as data), the site's jupyterhub_config.py
(written once, never overwritten), and the hub environment's lock (every
package, with hashes) as its requirements.txt."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from stackgen.common import layout
from stackgen.common.errors import InputError, SpecError
from stackgen.common.fsutil import write_atomic
from stackgen.common.templating import environment
from stackgen.site import hubform
from stackgen.site.hubspec import Hub
from stackgen.site.lockfile import Lock
from stackgen.site.render import ModulePlan, plan
from stackgen.site.spec import Stack

GENERATED = "stackgen_hub_config.py"
SITE_CONFIG = "jupyterhub_config.py"           # the site's: written only when absent
REQUIREMENTS = "requirements.txt"
PROXY_PACKAGE = "package.json"
LAUNCHER = "stackgen-singleuser"


def hub_of(stack: Stack) -> Hub:
    if stack.hub is None:
        raise InputError(f"{stack.path.name} has no hub section",
                         "add one (see `hub:` in the reference stack.yaml and docs/stack-yaml.md)")
    return stack.hub


def check_versions(stack: Stack, lock: Lock) -> None:
    """Refuse a hub whose major.minor is not the locked jupyterhub's (the
    single-user server's): JupyterHub only warns, and then things break."""
    hub = stack.hub
    if hub is None:
        return
    file, line, col = hub.jupyterhub_at
    locked = lock.pins().get("jupyterhub")
    lab = lab_module(stack, lock)
    if locked is None:
        raise SpecError(file, line, col, "hub.jupyterhub",
                        "the stack holds no jupyterhub: its servers cannot talk to this hub",
                        f"add 'jupyterhub=={_minor(hub.jupyterhub)}.*' to the packages of module "
                        f"{lab.name}, then run `stackgen lock`")
    if _minor(locked) != _minor(hub.jupyterhub):
        raise SpecError(file, line, col, "hub.jupyterhub",
                        f"the hub runs JupyterHub {hub.jupyterhub}, but the stack's servers run "
                        f"jupyterhub {locked} (the lock); hub and servers must share major.minor",
                        f"run a {_minor(locked)}.x hub (hub.jupyterhub), or pin "
                        f"'jupyterhub=={_minor(hub.jupyterhub)}.*' in module {lab.name} and run "
                        "`stackgen lock` and `stackgen build`")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def lab_module(stack: Stack, lock: Lock) -> ModulePlan:
    """The module JupyterLab is built into, by the rule that places it there
    (render.plan): it ships the launcher."""
    lab = next((m for m in plan(stack, lock) if m.holds_jupyterlab), None)
    if lab is None:
        raise InputError(f"{stack.path.name}: no module of the stack holds jupyterlab",
                         "the hub spawns the stack's lab: add jupyterlab to a module's packages")
    return lab


def launcher(lab: ModulePlan, prefix: Path) -> Path:
    return layout.install_dir(prefix, lab.name, lab.version).joinpath(*layout.BIN, LAUNCHER)


def site_data(stack: Stack, launcher_path: Path, folder: Path) -> dict:
    """What the generated file knows of the site: the form's choices and where things are."""
    hub = hub_of(stack)
    return {
        "partitions": [asdict(p) for p in hub.partitions],
        "reservations": list(hub.reservations), "accounts": list(hub.accounts),
        "time_warning": hub.time_warning, "idle_timeout": hub.idle_timeout,
        "ipyparallel": hub.ipyparallel, "dask": hub.dask,
        "dask_tasks_per_node": hub.dask_tasks_per_node,
        "launcher": str(launcher_path),
        "proxy": str(folder / "node_modules" / ".bin" / "configurable-http-proxy"),
    }


@dataclass(frozen=True)
class HubFiles:
    generated: dict[str, str]        # re-made every time
    once: dict[str, str]             # written only when absent


def render(stack: Stack, lock: Lock, launcher_path: Path, folder: Path) -> HubFiles:
    hub = hub_of(stack)
    if lock.hub is None or set(lock.hub.requirements) != set(hub.requirements()):
        raise InputError(f"the lock has no hub environment for {', '.join(hub.requirements())}",
                         "run `stackgen lock`: it pins the hub's environment with the stack")
    source = resources.files(hubform.__package__).joinpath("hubform.py").read_text(encoding="utf-8")
    env = environment()
    config = env.get_template(f"{GENERATED}.j2").render(
        stack=stack.name, version=stack.version, jupyterhub=hub.jupyterhub,
        form_source=source.strip(), site=site_data(stack, launcher_path, folder))
    proxy_name, proxy_version = hub.proxy.rsplit("@", 1)
    package = {"name": f"{stack.name}-hub", "private": True,
               "description": "the hub's configurable-http-proxy (npm install here)",
               "dependencies": {proxy_name: proxy_version}}
    return HubFiles(
        generated={GENERATED: config,
                   REQUIREMENTS: lock.hub.render(),
                   PROXY_PACKAGE: json.dumps(package, indent=2) + "\n"},
        once={SITE_CONFIG: env.get_template(f"{SITE_CONFIG}.j2").render(
            stack=stack.name, folder=str(folder))})


def write(files: HubFiles, folder: Path) -> tuple[list[str], list[str]]:
    """Write into `folder`, each file atomically; (written, kept) file names."""
    written, kept = [], []
    for name, text in files.generated.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
        written.append(name)
    for name, text in files.once.items():
        if write_atomic(folder / name, text, replace=False):
            written.append(name)
        else:
            kept.append(name)
    return written, kept
