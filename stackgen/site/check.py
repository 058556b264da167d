"""Is a lock still the one stack.yaml and the base would give? And if not, why."""

from __future__ import annotations

from stackgen.site.base import BaseIdentity
from stackgen.site.lockfile import Lock
from stackgen.site.spec import Stack


def stale_reasons(stack: Stack, identity: BaseIdentity, lock: Lock | None) -> list[str]:
    """Empty when `lock` matches; else one line per thing that changed."""
    if lock is None:
        return [f"no lock yet: {stack.root.name}/lockfiles/{stack.lock_name} is missing"]
    reasons: list[str] = []
    have = lock.header
    if have.spec_digest != stack.lock_digest():
        reasons += _spec_changes(stack, lock) or ["stack.yaml's lock inputs changed "
                                                  "(spec digest differs)"]
    if have.base_digest != identity.digest():
        reasons += _base_changes(identity, lock) or ["the base changed (base digest differs)"]
    return reasons


def _spec_changes(stack: Stack, lock: Lock) -> list[str]:
    have = lock.header
    want_reqs = {(p.module, p.text) for p in stack.pins}
    have_reqs = set(have.requirements)
    out = [f"added to module {m}: {t}" for m, t in sorted(want_reqs - have_reqs)]
    out += [f"removed from module {m}: {t}" for m, t in sorted(have_reqs - want_reqs)]
    want_npm = {(p.module, p.text) for m in stack.modules for p in m.source_extensions}
    have_npm = {(n.module, f"{n.name}@{n.version}") for n in lock.npm}
    out += [f"source extension added to module {m}: {t}" for m, t in sorted(want_npm - have_npm)]
    out += [f"source extension removed from module {m}: {t}"
            for m, t in sorted(have_npm - want_npm)]
    want_hub = set(stack.hub.requirements()) if stack.hub else set()
    have_hub = set(lock.hub.requirements) if lock.hub else set()
    out += [f"added to the hub's environment: {t}" for t in sorted(want_hub - have_hub)]
    out += [f"removed from the hub's environment: {t}" for t in sorted(have_hub - want_hub)]
    want_deps = {m.name: tuple(sorted(m.depends)) for m in stack.modules}
    have_deps = dict(have.depends)
    for name in sorted(set(want_deps) | set(have_deps)):
        if want_deps.get(name, ()) != have_deps.get(name, ()):
            out.append(f"module {name} now depends on: {', '.join(want_deps.get(name, ())) or 'nothing'}")
    if have.base_module != stack.base.module:
        out.append(f"base module changed: {have.base_module} -> {stack.base.module}")
    return out


def _base_changes(identity: BaseIdentity, lock: Lock) -> list[str]:
    have = lock.header
    out = []
    python = f"{identity.implementation} {identity.python} {identity.platform}"
    if have.base_python != python:
        out.append(f"base Python changed: {have.base_python} -> {python}")
    was = dict(p.split("==", 1) for p in have.base_provides)
    now = identity.provided()
    for name in sorted(set(was) | set(now)):
        if name not in now:
            out.append(f"base no longer provides {name} {was[name]}")
        elif name not in was:
            out.append(f"base now provides {name} {now[name]}")
        elif was[name] != now[name]:
            out.append(f"base {name} changed: {was[name]} -> {now[name]}")
    return out


