"""stack.yaml: read once, checked against the schema, turned into typed objects.

Past `load_stack` the code trusts `Stack`; every input error before that
names the file, line and key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stackgen.site import npm, yamlsrc
from stackgen.site import schema as schema_mod
from stackgen.site.hubspec import Hub, load_hub
from stackgen.site.npm import NpmPin
from stackgen.site.yamlsrc import Source

# Bumped when the meaning of the lock inputs changes, so old locks go stale.
LOCK_INPUTS_VERSION = 1

# A module's homepage when neither stack.yaml nor a namesake package gives one
# (the schema documents it as stack.homepage's default).
DEFAULT_HOMEPAGE = "https://jupyter.org/"


@dataclass(frozen=True)
class Pin:
    """A requirement of the stack, as written in stack.yaml."""

    text: str            # normalised PEP 508 text, e.g. "dask[distributed]==2026.8.*"
    name: str            # canonical project name, e.g. "dask"
    module: str          # the stack module that asked for it
    extension: bool = False
    # where stack.yaml names it, "stack.yaml:31:9: modules.x.packages[1]", for
    # the errors of later stages (not part of what the pin means)
    place: str = field(default="", compare=False)

    @property
    def requirement(self) -> Requirement:
        return Requirement(self.text)


@dataclass(frozen=True)
class Module:
    name: str
    version: str
    description: str
    depends: tuple[str, ...]
    pins: tuple[Pin, ...]
    source_extensions: tuple[NpmPin, ...] = ()
    homepage: str = ""

    @property
    def extensions(self) -> tuple[Pin, ...]:
        return tuple(p for p in self.pins if p.extension)

    @property
    def full_name(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class BaseSpec:
    module: str                       # "cray-python/3.11"
    modulepath: tuple[Path, ...]      # absolute


@dataclass(frozen=True)
class Kernel:
    name: str
    display_name: str
    modules: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LabSettings:
    extension_manager: str = "readonly"
    overrides: dict = field(default_factory=dict, hash=False)
    page_config: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SingleUserSettings:
    env_file_timeout: int = 30          # seconds ~/.jupyterhub.env may run


@dataclass(frozen=True)
class Settings:
    lab: LabSettings = field(default_factory=LabSettings)
    dask: dict = field(default_factory=dict, hash=False)
    singleuser: SingleUserSettings = field(default_factory=SingleUserSettings)


@dataclass(frozen=True)
class Parallel:
    """stack.yaml's parallel section: the defaults of parallel contexts and
    production jobs, as the session side reads them (stackgen.session.plan.Options)."""

    partition: str = ""
    account: str = ""
    time_limit: str = ""
    cores: int = 0
    memory: str = ""
    interface: str = ""
    mpi_plugin: str = "pmix"
    start_timeout: int = 120
    stop_timeout: int = 10

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Stack:
    path: Path                        # stack.yaml, absolute
    name: str
    version: str
    description: str
    base: BaseSpec
    modules: tuple[Module, ...]       # dependencies before dependents
    prefix: Path                      # install root, absolute
    settings: Settings = field(default_factory=Settings)
    kernels: tuple[Kernel, ...] = ()
    parallel: Parallel = field(default_factory=Parallel)
    hub: Hub | None = None            # the JupyterHub serving the stack, if the site runs one
    homepage: str = DEFAULT_HOMEPAGE

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def lock_name(self) -> str:
        return f"{self.name}-{self.version}.txt"

    @property
    def lock_path(self) -> Path:
        return self.root / "lockfiles" / self.lock_name

    def module(self, name: str) -> Module:
        return next(m for m in self.modules if m.name == name)

    @property
    def pins(self) -> tuple[Pin, ...]:
        return tuple(p for m in self.modules for p in m.pins)

    def lock_inputs(self) -> dict:
        """Exactly what the resolution depends on; its digest marks a lock stale."""
        return {
            "format": LOCK_INPUTS_VERSION,
            "stack": self.name,
            "version": self.version,
            "base": self.base.module,
            "modules": {m.name: {"depends": sorted(m.depends),
                                 "requirements": sorted(p.text for p in m.pins),
                                 # only when present: stacks without any keep their digest
                                 **({"npm": sorted(p.text for p in m.source_extensions)}
                                    if m.source_extensions else {})}
                        for m in self.modules},
            # only when present: stacks without a hub keep their digest
            **({"hub": sorted(self.hub.requirements())} if self.hub else {}),
        }

    def lock_digest(self) -> str:
        blob = json.dumps(self.lock_inputs(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def load_stack(path: Path | str, display: str | None = None) -> Stack:
    """Read, validate and type stack.yaml; raise SpecError on any bad input."""
    path = Path(path).absolute()
    source = yamlsrc.load(path, display or _display(path))
    if not isinstance(source.data, dict):
        raise source.error((), "the file must be a mapping with keys stack, base and modules"
                           if source.data is not None else "the file is empty",
                           "start from the reference stack.yaml of stackgen")
    schema_mod.validate(source)
    return _build(source, path)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _build(source: Source, path: Path) -> Stack:
    data = source.data
    root = path.parent
    stack_version = data["stack"]["version"]
    modules = {name: _module(source, name, body, stack_version)
               for name, body in data["modules"].items()}
    _check_depends(source, modules)
    _check_duplicates(source, modules)
    base = data["base"]
    settings = data.get("settings", {})
    lab = settings.get("lab", {})
    install = data.get("install", {})
    return Stack(
        path=path,
        name=data["stack"]["name"],
        version=stack_version,
        description=data["stack"].get("description", ""),
        homepage=data["stack"].get("homepage", DEFAULT_HOMEPAGE),
        base=BaseSpec(module=base["module"],
                      modulepath=tuple((root / p).resolve() for p in base.get("modulepath", []))),
        modules=tuple(modules[n] for n in _topological(modules)),
        prefix=(root / install.get("prefix", "stack")).absolute(),
        settings=Settings(
            lab=LabSettings(extension_manager=lab.get("extension_manager", "readonly"),
                            overrides=lab.get("overrides", {}),
                            page_config=lab.get("page_config", {})),
            dask=settings.get("dask", {}),
            singleuser=SingleUserSettings(
                env_file_timeout=settings.get("singleuser", {}).get("env_file_timeout", 30))),
        kernels=tuple(Kernel(name=k["name"], display_name=k.get("display_name", k["name"]),
                             modules=tuple(k.get("modules", [])),
                             env=tuple(sorted(k.get("env", {}).items())))
                      for k in data.get("kernels", [])),
        parallel=Parallel(**data.get("parallel", {})),
        hub=load_hub(source, source.file),
    )


def _module(source: Source, name: str, body: dict, stack_version: str) -> Module:
    pins = []
    for key, extension in (("packages", False), ("extensions", True)):
        for i, text in enumerate(body.get(key, [])):
            pins.append(_pin(source, ("modules", name, key, i), text, name, extension))
    if not pins and not body.get("source_extensions"):
        raise source.error(("modules", name), "the module holds no packages",
                           "add a packages: list, or remove the module")
    sources = tuple(_npm_pin(source, ("modules", name, "source_extensions", i), text, name)
                    for i, text in enumerate(body.get("source_extensions", [])))
    for i, pin in enumerate(sources):
        first = next(j for j, other in enumerate(sources) if other.name == pin.name)
        if first != i:
            line, _ = source.where(("modules", name, "source_extensions", first))
            raise source.error(("modules", name, "source_extensions", i),
                               f"source extension '{pin.name}' is listed twice (also on line {line})",
                               "list each npm package once, with the one version to build")
    if sources and not any(p.name == "jupyterlab" for p in pins):
        raise source.error(("modules", name, "source_extensions"),
                           f"module '{name}' has source extensions but does not list jupyterlab",
                           "source extensions are built into JupyterLab's app dir: declare them "
                           "in the module whose packages list jupyterlab")
    return Module(name=name, version=body.get("version", stack_version),
                  description=body.get("description", ""),
                  depends=tuple(body.get("depends", [])), pins=tuple(pins),
                  source_extensions=sources, homepage=body.get("homepage", ""))


def _npm_pin(source: Source, path: tuple, text: str, module: str) -> NpmPin:
    try:
        return npm.parse_pin(text, module)
    except ValueError as exc:
        raise source.error(path, str(exc),
                           "name the npm package with one exact version, such as "
                           "'jupyterlab-tour@4.0.1': the central build "
                           "must give the same app on every rebuild") from None


def _pin(source: Source, path: tuple, text: str, module: str, extension: bool) -> Pin:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        detail = str(exc).splitlines()[0]
        raise source.error(path, f"invalid requirement {text!r}: {detail}",
                           "use a PEP 508 requirement such as 'jupyterlab==4.6.*' or "
                           "'dask[distributed]>=2025.1'") from None
    if req.url:
        raise source.error(path, f"{text!r} points at a URL; a lock must come from PyPI alone",
                           "name the package and a version specifier instead")
    line, col = source.where(path)
    return Pin(text=str(req), name=canonicalize_name(req.name), module=module,
               extension=extension, place=f"{source.file}:{line}:{col}: {yamlsrc.dotted(path)}")


def _check_depends(source: Source, modules: dict[str, Module]) -> None:
    for name, module in modules.items():
        for i, dep in enumerate(module.depends):
            if dep == name:
                raise source.error(("modules", name, "depends", i),
                                   f"module '{name}' depends on itself", "remove it from depends")
            if dep not in modules:
                raise source.error(("modules", name, "depends", i),
                                   f"unknown module '{dep}'",
                                   f"modules of this stack: {', '.join(sorted(modules))}")
    cycle = _find_cycle(modules)
    if cycle:
        raise source.error(("modules", cycle[0], "depends"),
                           f"module dependencies form a cycle: {' -> '.join(cycle)}",
                           "a module may not (indirectly) depend on itself")


def _check_duplicates(source: Source, modules: dict[str, Module]) -> None:
    seen: dict[str, tuple] = {}
    for name, module in modules.items():
        counts = {"packages": 0, "extensions": 0}
        for pin in module.pins:
            key = "extensions" if pin.extension else "packages"
            path = ("modules", name, key, counts[key])
            counts[key] += 1
            if pin.name in seen:
                line, _ = source.where(seen[pin.name])
                raise source.error(path, f"package '{pin.name}' is listed twice "
                                   f"(also at {yamlsrc.dotted(seen[pin.name])}, line {line})",
                                   "list each package once, in the module that should hold it; "
                                   "a module's depends brings the others' packages along")
            seen[pin.name] = path


def _find_cycle(modules: dict[str, Module]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if state.get(name) == 1:
            return trail[trail.index(name):] + [name]
        if state.get(name) == 2:
            return None
        state[name] = 1
        for dep in modules[name].depends:
            found = visit(dep, trail + [name])
            if found:
                return found
        state[name] = 2
        return None

    for name in sorted(modules):
        found = visit(name, [])
        if found:
            return found
    return None


def _topological(modules: dict[str, Module]) -> list[str]:
    """Dependencies first; ties in name order, so the result is stable."""
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(modules):
        ready = sorted(n for n, m in modules.items()
                       if n not in placed and all(d in placed for d in m.depends))
        order.extend(ready)
        placed.update(ready)
    return order
