"""The lock's npm section: each source extension, the npm tree its build
installs, and yarn's yarn.lock, written and read here (lockfile.py calls
these), checked whole as the package section is.

In the lock's header, sorted:

    # npm: MODULE: NAME@VERSION INTEGRITY URL          the extension itself
    # npm-yarn-lock: NAME@VERSION: FILE sha256:HEX      yarn's record, beside the lock
    # npm-tree: NAME@VERSION: DEP@VERSION INTEGRITY URL every package its build installs
    # npm-digest: sha256:HEX N tarballs                  of the lines above

The yarn.lock files live in `lockfiles/<stack>-<version>.npm/`; the lock
names each with its sha256, so neither can change without the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

from stackgen.common.errors import InputError
from stackgen.common.fsutil import write_atomic
from stackgen.site.npm import LockedNpm, NpmTarball


def lines(npm: tuple[LockedNpm, ...]) -> list[str]:
    """The npm header lines, without the digest."""
    exts = sorted(npm, key=lambda n: (n.module, n.name))
    out = [f"# npm: {n.module}: {n.text} {n.integrity} {n.url}" for n in exts]
    out += [f"# npm-yarn-lock: {n.text}: {n.yarn_lock_file} {n.yarn_lock_sha256}"
            for n in exts if n.yarn_lock]
    out += [f"# npm-tree: {n.text}: {t.text} {t.integrity} {t.url}"
            for n in exts for t in sorted(n.tree, key=lambda t: (t.name, t.version))]
    return out


def digest_line(npm: tuple[LockedNpm, ...]) -> list[str]:
    if not npm:
        return []
    count = len(npm) + sum(len(n.tree) for n in npm)
    return [f"# npm-digest: {_digest(lines(npm))} {count} tarballs"]


def _digest(text_lines: list[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(text_lines).encode()).hexdigest()


def folder(lock_path: Path) -> Path:
    """Where the yarn.lock files of the lock at `lock_path` live."""
    return Path(lock_path).with_suffix(".npm")


def write_yarn_locks(npm: tuple[LockedNpm, ...], lock_path: Path) -> None:
    """Each yarn.lock beside the lock; those of extensions no longer locked go."""
    target = folder(lock_path)
    wanted = {n.yarn_lock_file: n.yarn_lock for n in npm if n.yarn_lock}
    for name, text in sorted(wanted.items()):
        path = target / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
    if target.is_dir():
        for old in target.glob("*.yarn.lock"):
            if old.name not in wanted:
                old.unlink()


def read_yarn_locks(lock_path: Path) -> Callable[[str], str | None]:
    """A reader of the yarn.lock files beside the lock at `lock_path`."""
    def reader(name: str) -> str | None:
        try:
            return (folder(lock_path) / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
    return reader


def parse(meta: dict[str, list[str]], file: str, yarn_lock: Callable[[str], str | None],
          integrity_error: Callable[[str], Exception]) -> tuple[LockedNpm, ...]:
    """The npm section of a lock's header, checked: the digest, each tree
    entry's address, each yarn.lock's sha256."""
    exts = {n.text: n for n in (_extension(line, file) for line in meta.get("npm", []))}
    trees: dict[str, list[NpmTarball]] = {}
    for line in meta.get("npm-tree", []):
        owner, tarball = _tree_entry(line, file)
        trees.setdefault(owner, []).append(tarball)
    yarn_files: dict[str, tuple[str, str]] = {}
    for line in meta.get("npm-yarn-lock", []):
        owner, _, rest = line.partition(": ")
        name, _, sha = rest.partition(" ")
        yarn_files[owner] = (name, sha)
    unknown = sorted((set(trees) | set(yarn_files)) - set(exts))
    if unknown:
        raise integrity_error(f"npm lines name {', '.join(unknown)}, which is not a locked "
                              "source extension")
    npm = tuple(replace(n, tree=tuple(trees.get(key, ()))) for key, n in sorted(exts.items()))
    recorded = meta.get("npm-digest", [""])[0].split()
    written = [f"# {key}: {value}" for key in ("npm", "npm-yarn-lock", "npm-tree")
               for value in meta.get(key, [])]
    if npm and (not recorded or recorded[0] != _digest(written)):
        raise integrity_error("the npm section differs from the digest in its header")
    out = []
    for n in npm:
        for t in n.tree:
            if unquote(t.url.rsplit("/", 1)[-1]) != f"{t.name.split('/')[-1]}-{t.version}.tgz" \
                    or not t.integrity.startswith("sha512-"):
                raise integrity_error(f"npm {t.text} (built with {n.text}): its address or "
                                      "integrity is not an npm tarball's")
        if n.text in yarn_files:
            name, sha = yarn_files[n.text]
            text = yarn_lock(name)
            if text is None:
                raise integrity_error(f"{name}, the yarn.lock of {n.text}, is missing")
            n = replace(n, yarn_lock=text)
            if name != n.yarn_lock_file or n.yarn_lock_sha256 != sha:
                raise integrity_error(f"{name}, the yarn.lock of {n.text}, differs from its "
                                      "sha256 in the lock")
        out.append(n)
    return tuple(out)


def _fail(file: str, line: str, want: str) -> InputError:
    return InputError(f"{file}: npm line {line!r} is not '{want}'", "run `stackgen lock` to rewrite it")


def _extension(line: str, file: str) -> LockedNpm:
    module, _, rest = line.partition(": ")
    parts = rest.split()
    name, _, version = parts[0].rpartition("@") if parts else ("", "", "")
    if len(parts) != 3 or not name or not version:
        raise _fail(file, line, "module: name@version integrity url")
    return LockedNpm(module, name, version, parts[1], parts[2])


def _tree_entry(line: str, file: str) -> tuple[str, NpmTarball]:
    owner, _, rest = line.partition(": ")
    parts = rest.split()
    name, _, version = parts[0].rpartition("@") if parts else ("", "", "")
    if len(parts) != 3 or not name or not version or not owner:
        raise _fail(file, line, "extension@version: name@version integrity url")
    return owner, NpmTarball(name, version, parts[1], parts[2])
