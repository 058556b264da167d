"""What each subcommand does, in terms of the stages; the parser is in cli.py."""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from pathlib import Path

from stackgen.common.node import node_folder
from stackgen.common.ui import default_cache, emit_json, progress
from stackgen.site import hublock, lockfile
from stackgen.site.base import load_base
from stackgen.site.check import stale_reasons
from stackgen.site.hubconfig import check_versions
from stackgen.site.lock import make_lock
from stackgen.site.prefix import build_lock
from stackgen.site.spec import load_stack


def _rel(stack, path) -> str:
    try:
        return str(path.relative_to(stack.root))
    except ValueError:
        return str(path)


def validate(args: Namespace) -> int:
    stack = load_stack(args.spec)
    summary = {"stack": stack.name, "version": stack.version,
               "modules": [m.full_name for m in stack.modules],
               "requirements": len(stack.pins)}
    if args.json:
        emit_json({"valid": True, **summary})
    else:
        print(f"{args.spec}: valid: stack {stack.name} {stack.version}, modules "
              f"{', '.join(summary['modules'])}, {len(stack.pins)} requirements")
    return 0


def lock(args: Namespace) -> int:
    stack = load_stack(args.spec)
    progress(f"loading the base module {stack.base.module}")
    base = load_base(stack.base)
    before = _read_quietly(stack)
    new = make_lock(stack, base, resolver=args.resolver, upgrade=args.upgrade_package,
                    upgrade_all=args.upgrade, cache=args.cache_dir or default_cache(),
                    progress=progress)
    path = stack.lock_path
    unchanged = _written(path, new.render()) and \
        _written(hublock.path_for(path), new.hub.render() if new.hub else None)
    if not unchanged:
        new.write(path)
    changes = _pin_changes(before, new)
    if args.json:
        emit_json({"lock": _rel(stack, path), "packages": len(new.packages),
                   "hub_lock": _rel(stack, hublock.path_for(path)) if new.hub else None,
                   "hub_packages": len(new.hub.packages) if new.hub else 0,
                   "changed": not unchanged, "resolver": new.header.resolver,
                   "pins": changes})
        return 0
    verb = "unchanged" if unchanged else "wrote"
    print(f"{verb} {_rel(stack, path)}: {len(new.packages)} packages "
          f"(base provides {len(new.header.base_provides)}: "
          f"{', '.join(p.split('==')[0] for p in new.header.base_provides)})")
    if new.hub:
        print(f"  and {_rel(stack, hublock.path_for(path))}: the hub's environment, "
              f"{len(new.hub.packages)} packages")
    for line in _describe(changes):
        print(f"  {line}")
    return 0


def _written(path: Path, text: str | None) -> bool:
    """Whether `path` holds `text` already (None: whether it is absent)."""
    try:
        return path.read_text(encoding="utf-8") == text
    except FileNotFoundError:
        return text is None


def check(args: Namespace) -> int:
    stack = load_stack(args.spec)
    current = lockfile.read(stack.lock_path, _rel(stack, stack.lock_path))
    if current is not None:
        check_versions(stack, current)        # the hub and the stack's servers
    base = load_base(stack.base)
    reasons = stale_reasons(stack, base.identity, current)
    if args.json:
        emit_json({"lock": _rel(stack, stack.lock_path), "current": not reasons,
                   "reasons": reasons})
    elif reasons:
        print(f"{_rel(stack, stack.lock_path)} is stale:", file=sys.stderr)
        for reason in reasons:
            print(f"  - {reason}", file=sys.stderr)
        print("hint: run `stackgen lock` to bring it up to date", file=sys.stderr)
    else:
        print(f"{_rel(stack, stack.lock_path)} is current "
              f"({len(current.packages)} packages, {current.header.resolver})")
    return 1 if reasons else 0


def schema(args: Namespace) -> int:
    from stackgen.site import schema as schema_mod
    if args.path:
        print(schema_mod.schema_path())
    elif args.markdown:
        from stackgen.site.schemadoc import markdown
        sys.stdout.write(markdown())
    else:
        print(json.dumps(schema_mod.schema(), indent=2))
    return 0


def _read_quietly(stack):
    try:
        return lockfile.read(stack.lock_path)
    except Exception:  # a broken old lock is simply replaced
        return None


def _pin_changes(before, after) -> dict:
    old = before.pins() if before else {}
    new = after.pins()
    return {name: {"from": old.get(name), "to": new.get(name)}
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)}


def _describe(changes: dict) -> list[str]:
    out = []
    for name, change in changes.items():
        if change["from"] is None:
            out.append(f"+ {name} {change['to']}")
        elif change["to"] is None:
            out.append(f"- {name} {change['from']}")
        else:
            out.append(f"~ {name} {change['from']} -> {change['to']}")
    return out


def _current_lock(stack, base, relock: bool = False, resolver: str = "uv"):
    """The stack's lock, refusing a stale one (or re-locking with --relock)."""
    from stackgen.common.errors import StaleError
    current = lockfile.read(stack.lock_path, _rel(stack, stack.lock_path))
    reasons = stale_reasons(stack, base.identity, current)
    if not reasons:
        return current
    if not relock:
        raise StaleError(f"{_rel(stack, stack.lock_path)} is stale: " + "; ".join(reasons),
                         "run `stackgen lock` (or pass --relock)")
    progress("the lock is stale (" + "; ".join(reasons) + "): re-locking")
    new = make_lock(stack, base, resolver=resolver, cache=default_cache(), progress=progress)
    new.write(stack.lock_path)
    return new


def _wheelhouse(args) -> Path:
    return Path(args.wheelhouse) if args.wheelhouse else default_cache() / "wheelhouse"


def fetch(args: Namespace) -> int:
    from stackgen.site.fetch import fetch as fetch_files
    stack = load_stack(args.spec)
    base = load_base(stack.base)
    current = _current_lock(stack, base)
    report = fetch_files(current, _wheelhouse(args), progress)
    if args.json:
        emit_json({"wheelhouse": str(_wheelhouse(args)), "present": report.present,
                   "downloaded": report.downloaded, "bytes": report.bytes})
    else:
        print(f"{_wheelhouse(args)}: {len(current.packages)} files verified "
              f"({report.downloaded} downloaded)")
    return 0


def render(args: Namespace) -> int:
    stack = load_stack(args.spec)
    base = load_base(stack.base)
    current = _current_lock(stack, base)
    changed = render_easyconfigs(stack, current, _wheelhouse(args), check_only=args.check)
    if args.check:
        if changed:
            print("easyconfigs/ differs from what stack.yaml and the lock give: "
                  + ", ".join(changed), file=sys.stderr)
            print("hint: run `stackgen render` and commit the result", file=sys.stderr)
            return 1
        print("easyconfigs/ is current")
        return 0
    print(f"easyconfigs/: {len(changed)} file(s) written" + (f": {', '.join(changed)}" if changed else
                                                            " (all current)"))
    return 0


def render_easyconfigs(stack, current, wheelhouse, check_only: bool = False) -> list[str]:
    """Write easyconfigs/ (only files whose text changes); return their names."""
    from stackgen.common.fsutil import write_atomic
    from stackgen.site import render as render_mod
    from stackgen.site.fetch import fetch as fetch_files
    from stackgen.site.wheels import top_level_names
    fetch_files(current, wheelhouse, progress)
    tops = {p.name: top_level_names(wheelhouse / p.file) for p in current.packages}
    texts = render_mod.render(stack, current, tops)
    folder = stack.root / "easyconfigs"
    changed = []
    for name, text in sorted(texts.items()):
        path = folder / name
        if not path.exists() or path.read_text() != text:
            changed.append(name)
            if not check_only:
                write_atomic(path, text)
    stale = sorted(p.name for p in folder.glob("*.eb") if p.name not in texts) \
        if folder.exists() else []
    for name in stale:
        changed.append(name)
        if not check_only:
            (folder / name).unlink()
    return changed


def build(args: Namespace) -> int:
    from stackgen.site import build as build_mod
    from stackgen.site import render as render_mod
    stack = load_stack(args.spec)
    prefix = Path(args.prefix).absolute() if args.prefix else stack.prefix
    progress(f"loading the base module {stack.base.module}")
    base = load_base(stack.base)
    current = _current_lock(stack, base, relock=args.relock, resolver=args.resolver)
    check_versions(stack, current)
    wheelhouse = _wheelhouse(args)
    render_easyconfigs(stack, current, wheelhouse)      # verifies every file first
    plans = render_mod.plan(stack, current)
    modules = [build_mod.Module.of_plan(mp, stack.root / "easyconfigs") for mp in plans]
    with build_lock(prefix):            # one build of a prefix at a time, for the whole run
        todo = _build_modules(args, stack, current, base, prefix, plans, modules, wheelhouse)
    if args.json:
        emit_json({"prefix": str(prefix), "modulepath": str(prefix / "modules" / "all"),
                   "built": [m.full_name for m, _ in todo],
                   "modules": [m.full_name for m in modules]})
        return 0
    top = modules[-1].name
    print(f"built {len(todo)} of {len(modules)} modules into {prefix}. Users type:\n"
          f"  module use {prefix / 'modules' / 'all'}\n  module load {top}")
    return 0


def _build_modules(args, stack, current, base, prefix, plans, modules, wheelhouse) -> list:
    """EasyBuild for every module that is missing or changed; the (module,
    why) it built."""
    from stackgen.site import build as build_mod
    from stackgen.site import lmod
    todo = [(m, why) for m in modules
            if (why := build_mod.needs_build(m, prefix, stack.base.modulepath))]
    if not todo:
        progress(f"nothing to build: all {len(modules)} modules are current in {prefix}")
    else:
        if os.geteuid() == 0:
            print("warning: running EasyBuild as root (--allow-use-as-root-and-accept-consequences);"
                  " sites build as an unprivileged staff account", file=sys.stderr)
        workdir = default_cache() / "eb"
        eb = build_mod.EasyBuild(prefix=prefix, easyconfigs=stack.root / "easyconfigs",
                                 wheelhouse=wheelhouse, workdir=workdir,
                                 modulepath=stack.base.modulepath,
                                 base_module=current.header.base_module,
                                 base_python=current.header.python_version,
                                 node_bin=node_folder(workdir) if current.npm else None,
                                 uv=build_mod.uv_command(),
                                 base_interpreter=base.python, recheck=args.recheck)
        eb.write_metadata()
        build_mod.prune_cache(workdir)
        build_mod.build_modules(eb, todo, lmod_cmd=lmod.lmod_cmd(), progress=progress,
                                jobs=args.jobs)
    return todo
