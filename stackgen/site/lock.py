"""The lock stage: stack + base -> Lock, and whether a Lock is still current."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stackgen.common.errors import CommandError, InputError, StackgenError
from stackgen.common.fsutil import scratch_folder, write_atomic
from stackgen.common.pypi import INDEX_URL, parse_pip_report
from stackgen.common.run import clean_env, run
from stackgen.site import lockfile, npm, npmresolve
from stackgen.site.base import Base
from stackgen.site.hublock import HubLock, HubPin
from stackgen.site.lockfile import Lock, LockedPackage, LockHeader
from stackgen.site.npm import LockedNpm
from stackgen.site.resolvers import NotOnPyPI, Request, Resolved, resolve, resolver_version
from stackgen.site.spec import Stack

log = logging.getLogger("stackgen.site.lockfile")

# pip's words for a pinned version its view of the index lacks.
_UNSEEN = re.compile(r"No matching distribution found for (\S+==\S+)")


def make_lock(stack: Stack, base: Base, *, resolver: str = "uv",
              upgrade: Iterable[str] = (), upgrade_all: bool = False,
              cache: Path, progress: Callable[[str], None] = lambda msg: None) -> Lock:
    """Resolve the whole stack for the base; the previous lock's pins are kept
    unless upgraded. Nothing is written here."""
    provided = base.identity.provided()
    _check_base_pins(stack, provided)
    previous = _previous(stack)
    upgrade = tuple(canonicalize_name(u) for u in upgrade)
    npm_names = {canonicalize_name(p.name) for m in stack.modules for p in m.source_extensions}
    known = set(previous.pins() if previous else ()) | {p.name for p in stack.pins} | npm_names
    known |= set(previous.hub.pins() if previous and previous.hub else ())
    known |= {canonicalize_name(Requirement(r).name) for r in (stack.hub.requirements() if stack.hub else ())}
    for name in upgrade:
        if name not in known:
            raise InputError(f"--upgrade-package {name}: not in the stack or its lock",
                             "name a package listed in the lock file")
    request = Request(
        requirements=tuple(sorted(p.text for p in stack.pins if p.name not in provided)),
        constraints=tuple(base.identity.constraints()),
        previous=previous.render() if previous else None,
        upgrade=upgrade, upgrade_all=upgrade_all)
    with scratch_folder(cache / "tmp", "lock-") as tmp:
        progress(f"resolving {len(request.requirements)} requirements with {resolver} "
                 f"for {base.identity.module} (Python {base.identity.python})")
        try:
            resolved = [r for r in resolve(resolver, request, base, Path(tmp), cache,
                                           heartbeat=lambda s: progress(f"still resolving ({s:.0f} s)"))
                        if r.name not in provided]
        except NotOnPyPI as exc:
            raise _not_on_pypi(stack, exc) from None
        progress(f"resolved {len(resolved)} packages; choosing each one's file for the base")
        chosen = select_files(base, resolved, Path(tmp), cache,
                              heartbeat=lambda s: progress(f"still asking pip ({s:.0f} s)"))
    requires = dependency_graph(stack, chosen, set(chosen))
    packages = tuple(LockedPackage(name=r.name, version=r.version, hashes=r.hashes,
                                   file=chosen[r.name]["file"], sha256=chosen[r.name]["sha256"],
                                   url=chosen[r.name]["url"], requires=requires[r.name])
                     for r in sorted(resolved, key=lambda r: r.name))
    renew = upgrade_all or bool(set(upgrade) & npm_names)
    return Lock(header=header_for(stack, base, resolver_version(resolver)), packages=packages,
                npm=lock_npm(stack, previous, packages, cache, progress, renew=renew),
                hub=lock_hub(stack, base, previous, resolver, upgrade, upgrade_all, cache, progress))


def lock_hub(stack: Stack, base: Base, previous: Lock | None, resolver: str,
             upgrade: tuple[str, ...], upgrade_all: bool, cache: Path,
             progress: Callable[[str], None]) -> HubLock | None:
    """The hub environment's pins: hub.jupyterhub and hub.packages with all
    they need, for the base's Python but none of its packages (the hub's
    environment is a venv of its own); the previous hub lock's pins kept."""
    if stack.hub is None:
        return None
    ident = base.identity
    request = Request(requirements=tuple(sorted(stack.hub.requirements())), constraints=(),
                      previous=previous.hub.render() if previous and previous.hub else None,
                      upgrade=upgrade, upgrade_all=upgrade_all)
    progress(f"resolving the hub's environment ({', '.join(request.requirements)}) with {resolver}")
    with scratch_folder(cache / "tmp", "hub-") as tmp:
        try:
            resolved = resolve(resolver, request, base, Path(tmp), cache,
                               heartbeat=lambda s: progress(f"still resolving the hub ({s:.0f} s)"))
        except NotOnPyPI as exc:
            raise InputError(f"{stack.path.name}: hub.packages: no project named "
                             f"{', '.join(exc.names)} exists on PyPI ({exc.resolver})",
                             "check the spelling on https://pypi.org; nothing was written") from None
        except InputError as exc:
            raise InputError(f"{stack.path.name}: the hub's environment (hub.jupyterhub, "
                             f"hub.packages): {exc.message}",
                             "change the clashing pin in the hub section; nothing was written") from None
    return HubLock(spec_digest=stack.lock_digest(),
                   python=f"{ident.implementation} {ident.python} {ident.platform}",
                   requirements=request.requirements,
                   packages=tuple(HubPin(r.name, r.version, r.hashes)
                                  for r in sorted(resolved, key=lambda r: r.name)))


def _not_on_pypi(stack: Stack, exc: NotOnPyPI) -> InputError:
    """Each requirement naming a project PyPI does not have, at its stack.yaml line."""
    lines = []
    for name in exc.names:
        pins = [p for p in stack.pins if p.name == name]
        lines += [f"{p.place}: {p.text!r}: no project named {name} exists on PyPI" for p in pins] or [
            f"{name}, a dependency of the stack's packages, does not exist on PyPI"]
    return InputError("\n".join(lines) + f"\n  (resolving with {exc.resolver})",
                      "check the spelling on https://pypi.org (stackgen locks from PyPI alone); "
                      "nothing was written")


def lock_npm(stack: Stack, previous: Lock | None, packages: tuple[LockedPackage, ...],
             cache: Path, progress: Callable[[str], None] = lambda msg: None,
             renew: bool = False) -> tuple[LockedNpm, ...]:
    """Each source extension with its tarball and integrity and the npm tree
    of its build; one already in the previous lock with its tree is kept as
    it is (unless `renew`), without asking the registry or running yarn."""
    known = {(n.module, n.name, n.version): n for n in (previous.npm if previous else ())
             if n.tree and n.yarn_lock}
    pins = [pin for module in stack.modules for pin in module.source_extensions]
    todo = [pin for pin in pins if renew or (pin.module, pin.name, pin.version) not in known]
    out = [known[(p.module, p.name, p.version)] for p in pins if p not in todo]
    if todo:
        lab = next((p for p in packages if p.name == "jupyterlab"), None)
        builder = next((p for p in packages if p.name == "jupyter-builder"), None)
        if lab is None or builder is None:
            raise InputError("source_extensions are built against the stack's JupyterLab with its "
                             "jlpm: the lock holds no jupyterlab or jupyter-builder",
                             "put jupyterlab (4.6 or newer) into the module with the source "
                             "extensions")
        yarn_js = npmresolve.jlpm_from_wheel(builder, cache)
        dists = npmresolve.load_known(cache)
        with scratch_folder(cache / "tmp", "npm-") as tmp:
            for pin in todo:
                progress(f"asking the npm registry for {pin.text}")
                out.append(npmresolve.resolve_tree(
                    npm.lock_pin(pin), lab_version=lab.version, yarn_js=yarn_js, cache=cache,
                    workdir=Path(tmp), known=dists, progress=progress))
        npmresolve.save_known(cache, dists)
    return tuple(sorted(out, key=lambda n: (n.module, n.name)))


def header_for(stack: Stack, base: Base, resolver: str) -> LockHeader:
    ident = base.identity
    return LockHeader(
        stack=stack.name, version=stack.version, spec_digest=stack.lock_digest(),
        requirements=tuple(sorted((p.module, p.text) for p in stack.pins)),
        depends=tuple((m.name, tuple(sorted(m.depends))) for m in stack.modules if m.depends),
        base_module=ident.module,
        base_python=f"{ident.implementation} {ident.python} {ident.platform}",
        base_provides=tuple(ident.constraints()), base_digest=ident.digest(),
        resolver=resolver, index=INDEX_URL)


def _previous(stack: Stack) -> Lock | None:
    try:
        return lockfile.read(stack.lock_path)
    except (InputError, lockfile.LockIntegrityError) as exc:   # re-locking is the cure
        log.warning("ignoring the previous lock: %s", exc.message)
        return None


def _check_base_pins(stack: Stack, provided: dict[str, str]) -> None:
    """A stack requirement on a base package must accept the base's version."""
    for pin in stack.pins:
        if pin.name in provided and not pin.requirement.specifier.contains(
                provided[pin.name], prereleases=True):
            raise InputError(
                f"module {pin.module} asks for {pin.text}, but the base provides "
                f"{pin.name} {provided[pin.name]}",
                "the base's packages are never reinstalled (that would break the base); "
                "relax the requirement or choose another base")


def select_files(base: Base, resolved: list[Resolved], workdir: Path, cache: Path,
                 heartbeat: Callable[[float], None] | None = None) -> dict[str, dict]:
    """For each pin, the file the base's own pip would install (a dry run with
    hashes required) and its declared requirements. Answers are kept per base,
    so a re-lock asks pip only about pins it has not seen."""
    store = cache / "files" / f"{base.identity.digest()[7:23]}.json"
    try:
        known = json.loads(store.read_text())
    except (FileNotFoundError, ValueError):
        known = {}
    chosen: dict[str, dict] = {}
    ask = []
    for r in resolved:
        hit = known.get(f"{r.name}=={r.version}")
        if hit and f"sha256:{hit['sha256']}" in r.hashes:
            chosen[r.name] = hit
        else:
            ask.append(r)
    if ask:
        chosen.update(_ask_pip(base, ask, workdir, cache, heartbeat))
        known.update({f"{r.name}=={r.version}": chosen[r.name] for r in ask})
        write_atomic(store, json.dumps(known, sort_keys=True, indent=0))
    for info in chosen.values():
        info["markers"] = base.markers
    return chosen


def _ask_pip(base: Base, resolved: list[Resolved], workdir: Path, cache: Path,
             heartbeat: Callable[[float], None] | None) -> dict[str, dict]:
    pins = workdir / "pins.txt"
    pins.write_text("".join(f"{r.name}=={r.version} " + " ".join(f"--hash={h}" for h in r.hashes)
                            + "\n" for r in resolved))
    report = workdir / "report.json"
    argv = [str(base.python), "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--no-deps", "--quiet", "--report", str(report), "--index-url", INDEX_URL,
            "--require-hashes", "-r", str(pins)]
    describe = "choosing the files for the base (pip install --dry-run)"
    env = clean_env(base.env, PIP_CACHE_DIR=str(cache / "pip"))
    try:
        run(argv, env=env, describe=describe, logfile=workdir / "select.log", heartbeat=heartbeat)
    except CommandError as exc:
        # pip keeps an index page for minutes, and PyPI's CDN can serve an older
        # view of a project for a while after a release: the resolver may have
        # seen a version pip does not yet. Ask once more without pip's cache.
        unseen = _UNSEEN.findall(exc.output)
        if not unseen:
            raise
        log.info("pip does not see %s yet; asking again without its cache", ", ".join(unseen))
        try:
            run([*argv, "--no-cache-dir"], env=env, describe=describe,
                logfile=workdir / "select.log", heartbeat=heartbeat)
        except CommandError as again:
            if not _UNSEEN.findall(again.output):
                raise
            raise StackgenError(
                f"the resolver chose {', '.join(_UNSEEN.findall(again.output))}, but PyPI's "
                "index does not show it to pip yet (a release minutes old is served "
                "unevenly by PyPI's CDN)",
                "run the same `stackgen lock` again in a few minutes; nothing was written") from None
    chosen = {f.name: {"file": f.file, "sha256": f.sha256, "url": f.url,
                       "requires_dist": list(f.requires_dist)}
              for f in parse_pip_report(report.read_text())}
    missing = sorted({r.name for r in resolved} - set(chosen))
    if missing:
        raise StackgenError(f"pip chose no file for: {', '.join(missing)}")
    return chosen


def dependency_graph(stack: Stack, chosen: dict[str, dict],
                     locked: set[str]) -> dict[str, tuple[str, ...]]:
    """For each locked package, the locked packages it requires on the base,
    with the extras that the stack and its packages ask for."""
    extras: dict[str, set[str]] = {}
    for pin in stack.pins:
        extras.setdefault(pin.name, set()).update(pin.requirement.extras)
    edges: dict[str, set[str]] = {}
    changed = True
    while changed:             # extras can switch on further extras: to a fixpoint
        changed = False
        for name, info in chosen.items():
            for text in info["requires_dist"]:
                req = Requirement(text)
                if not _applies(req.marker, info["markers"], extras.get(name, set())):
                    continue
                dep = canonicalize_name(req.name)
                if dep in locked and dep not in edges.setdefault(name, set()):
                    edges[name].add(dep)
                    changed = True
                if req.extras - extras.get(dep, set()):
                    extras.setdefault(dep, set()).update(req.extras)
                    changed = True
    return {name: tuple(sorted(edges.get(name, ()))) for name in chosen}


def _applies(marker: Marker | None, env: dict, extras: set[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**env, "extra": extra}) for extra in (extras | {""}))
