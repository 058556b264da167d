"""What each `stackgen user-overlay` subcommand does; the parser is in usercli.py.

Every change re-makes the overlay as a whole from the list of extensions it
should hold (add = list + one, remove = list - one, sync = the same list on
the current central bundle): the result is always what a fresh `add` of
those extensions gives, and a failure leaves the previous overlay in place.
"""

from __future__ import annotations

import os
import sys
import tempfile
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

from packaging.utils import canonicalize_name

from stackgen.common import layout
from stackgen.common.errors import CommandError, InputError, StackgenError
from stackgen.common.node import node_folder
from stackgen.common.run import run
from stackgen.common.ui import default_cache, emit_json, progress
from stackgen.user import overlay_install as inst
from stackgen.user.overlay import (
    Central,
    Extension,
    Manifest,
    Overlay,
    clean_scratch,
    disk_usage,
    missing_files,
    refuse_central,
    status,
)


def _context() -> tuple[Central, Overlay]:
    central = Central.from_environment()
    return central, Overlay.for_central(central)


def remake(central: Central, overlay: Overlay, extensions: list[Extension],
           index_url: str) -> Manifest:
    """A new overlay holding exactly `extensions`, made beside the old one and
    swapped in only when complete. Its work folder (downloads, logs) is kept
    in ~/.cache/stackgen/overlay-logs only when this fails."""
    scratch = overlay.scratch()
    logs = default_cache() / "overlay-logs"
    logs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{central.stack}-{central.version}-", dir=logs))
    try:
        manifest = _make(central, extensions, index_url, scratch, work)
        overlay.swap_in(scratch, manifest)
    except BaseException:
        clean_scratch(scratch)
        raise
    clean_scratch(work)
    return manifest


def _make(central: Central, extensions: list[Extension], index_url: str, scratch: Path,
          work: Path) -> Manifest:
    """Fill `scratch` with `extensions`; downloads and logs go to `work`."""
    central_dists = inst.central_distributions()
    prebuilt = [e for e in extensions if e.kind == "prebuilt"]
    for ext in prebuilt:
        refuse_central(ext.name, central_dists)
    env = inst.installer_env()
    planned, labexts = [], {}
    if prebuilt:
        progress(f"resolving {', '.join(e.requirement for e in prebuilt)} against the "
                 f"{len(central_dists)} central packages")
        planned = inst.plan([e.requirement for e in prebuilt], central_dists, work, env,
                            index_url)
        progress(f"adding {len(planned)} package(s): "
                 + ", ".join(f"{p.name} {p.version}" for p in planned))
        wheels = inst.fetch_planned(planned, work / "wheels")
        labexts = inst.check_fits(wheels)
        inst.install(wheels, scratch, env, work)
    sources = [e for e in extensions if e.kind == "source"]
    if sources:
        _refuse_central_sources(central, sources)
        node = node_folder(default_cache() / "node", install=True)
        built = inst.build_source([(e.requirement, e.name, e.version) for e in sources],
                                  scratch.joinpath(*layout.JUPYTER_DATA, "labextensions"),
                                  node, work, progress)
        sources_built = {e.name: built.get(e.name, e.version) for e in sources}
    versions = {p.name: p.version for p in planned}
    if sources:
        versions.update(sources_built)
    by_wheel = {p.name: labexts.get(p.file, ()) for p in planned}
    done = tuple(replace(e, version=versions.get(e.name, e.version),
                         labextensions=by_wheel.get(e.name, e.labextensions))
                 for e in extensions)
    return Manifest(central.stack, central.version, central.bundle, done,
                    tuple((p.name, p.version) for p in planned))


def _refuse_central_sources(central: Central, sources: list[Extension]) -> None:
    """A source extension the central install already has, built or prebuilt."""
    labextensions = central.app_dir.parent / "labextensions"     # the install's share/jupyter
    for ext in sources:
        if labextensions.joinpath(*ext.name.split("/"), "package.json").exists():
            raise InputError(f"{ext.name} is already built into the central JupyterLab",
                             "it is there for everyone; nothing to add")


def _extension(args: Namespace) -> Extension:
    if args.source:
        requirement, name, version = inst.source_extension(args.extension.strip())
        return Extension(requirement, name, "source", version)
    req = inst.parse_requirement(args.extension)
    return Extension(str(req), canonicalize_name(req.name))


def add(args: Namespace) -> int:
    central, overlay = _context()
    new = _extension(args)
    with overlay.locked():
        current = overlay.manifest()
        kept = [e for e in (current.extensions if current else ()) if e.name != new.name]
        manifest = remake(central, overlay, [*kept, new], args.index_url)
    return _report(args, overlay, manifest, f"added {new.requirement}")


def remove(args: Namespace) -> int:
    central, overlay = _context()
    with overlay.locked():
        current = overlay.manifest()
        found = [e for e in (current.extensions if current else ())
                 if args.extension in (e.name, e.requirement) or (
                     e.kind == "prebuilt" and e.name == canonicalize_name(args.extension))]
        if not found:
            raise InputError(f"{args.extension} is not in your overlay",
                             "`stackgen user-overlay list` shows what it holds")
        name = found[0].name
        kept = [e for e in current.extensions if e.name != name]
        if not kept:
            overlay.remove()
            return _report(args, overlay, None, f"removed {name}; the overlay is now empty")
        manifest = remake(central, overlay, kept, args.index_url)
    return _report(args, overlay, manifest, f"removed {name}")


def reset(args: Namespace) -> int:
    _, overlay = _context()
    with overlay.locked():
        overlay.remove()
    return _report(args, overlay, None, "overlay removed: the central bundle alone is used")


def sync(args: Namespace) -> int:
    central, overlay = _context()
    with overlay.locked():
        current = overlay.manifest()
        source = overlay
        if current is None:
            others = overlay.others()
            if not others:
                return _report(args, overlay, None, "nothing to sync: you have no overlay")
            source = Overlay(others[-1], central.python_version)
            current = source.manifest()
        elif current.bundle == central.bundle and not missing_files(overlay, current):
            return _report(args, overlay, current, "already current")
        try:
            manifest = remake(central, overlay, list(current.extensions), args.index_url)
        except StackgenError as exc:
            exc.message = (f"your overlay ({', '.join(e.requirement for e in current.extensions)})"
                           f" no longer fits the central bundle {central.stack} "
                           f"{central.version}: {exc.message}")
            raise
    return _report(args, overlay, manifest,
                   f"synced from {source.root.name} onto the central bundle {central.version}")


def list_(args: Namespace) -> int:
    central, overlay = _context()
    manifest = overlay.manifest()
    state = status(overlay, central)
    others = [p.name for p in overlay.others()]
    if args.json:
        emit_json({"overlay": str(overlay.root), "status": state,
                   "stack": central.stack, "version": central.version,
                   "extensions": [vars(e) | {"labextensions": list(e.labextensions)}
                                  for e in (manifest.extensions if manifest else ())],
                   "packages": dict(manifest.packages) if manifest else {},
                   "other_versions": others})
        return 0
    if manifest is None:
        print(f"no overlay for {central.stack} {central.version}: the central bundle alone")
        if others:
            print(f"  you have overlays for {', '.join(others)}: "
                  "`stackgen user-overlay sync` brings them onto this version")
        return 0
    print(f"{overlay.root} ({state})")
    for ext in manifest.extensions:
        labs = f" [{', '.join(ext.labextensions)}]" if ext.labextensions else ""
        print(f"  {ext.name} {ext.version or ''} ({ext.kind}){labs}".rstrip())
    extra = [f"{n} {v}" for n, v in manifest.packages
             if n not in {e.name for e in manifest.extensions}]
    if extra:
        print(f"  with: {', '.join(extra)}")
    if state == "stale":
        print("  made on another central bundle: run `stackgen user-overlay sync`")
    elif state == "damaged":
        print(f"  files it lists are gone ({', '.join(missing_files(overlay, manifest))}): "
              "run `stackgen user-overlay sync` to re-make it")
    return 0


def doctor(args: Namespace) -> int:
    """The lab as the user gets it: every overlay extension enabled OK, no
    central package shadowed, the overlay current."""
    central, overlay = _context()
    manifest = overlay.manifest()
    problems: list[str] = []
    if manifest is None:
        problems.append("no overlay for this stack version")
    else:
        if manifest.bundle != central.bundle:
            problems.append("the overlay was made on another central bundle: run sync")
        central_dists = inst.central_distributions()
        shadow = sorted(n for n, _ in manifest.packages if n in central_dists)
        problems += [f"{n} is both central and in the overlay" for n in shadow]
        if str(overlay.site_packages) not in os.environ.get("PYTHONPATH", ""):
            problems.append("the overlay is not active in this shell: "
                            "`module load jupyterlab` again")
        else:
            problems += _labextension_problems(manifest)
    if args.json:
        emit_json({"overlay": str(overlay.root), "ok": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
    else:
        print(f"{overlay.root}: every extension enabled OK, no central package shadowed")
    return 1 if problems else 0


def _labextension_problems(manifest: Manifest) -> list[str]:
    try:
        listed = run(["jupyter", "labextension", "list"], describe="jupyter labextension list")
    except CommandError as exc:
        return [f"jupyter labextension list failed: {exc.output[-300:]}"]
    text = listed.output
    out = []
    for ext in manifest.extensions:
        for name in ext.labextensions or ((ext.name,) if ext.kind == "source" else ()):
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(name + " ")), "")
            if "enabled" not in line or "OK" not in line:
                out.append(f"{name} ({ext.name}) is not enabled OK: {line.strip() or 'not listed'}")
    return out


def _report(args: Namespace, overlay: Overlay, manifest: Manifest | None, what: str) -> int:
    if getattr(args, "json", False):
        emit_json({"overlay": str(overlay.root), "result": what,
                   "extensions": [e.name for e in manifest.extensions] if manifest else []})
        return 0
    print(what)
    if manifest is not None:
        size, files = disk_usage(overlay.root)
        print(f"  {overlay.root}: {files} files, {size / 1024:.0f} KB")
    print("  start a new shell, or `module load jupyterlab` again, to use it")
    return 0
