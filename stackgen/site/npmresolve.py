"""What a source extension's build installs, found at lock time: the
extension prepared as its build prepares it (stackgen.common.labbuild), the
stack's own jlpm (jupyter_builder's yarn.js, from the locked wheel) installs
its dependencies from the npm registry, and yarn's yarn.lock plus every
package it resolved, with the registry's address and integrity, go into the
lock. The build later installs the same tree offline, `--immutable`."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from stackgen.common import labbuild
from stackgen.common.download import Wanted, digest_for, download
from stackgen.common.errors import StackgenError
from stackgen.common.fsutil import write_atomic
from stackgen.common.node import node_folder
from stackgen.common.run import clean_env, run
from stackgen.site import npm
from stackgen.site.lockfile import LockedPackage
from stackgen.site.npm import LockedNpm, NpmTarball


def jlpm_from_wheel(builder: LockedPackage, cache: Path) -> Path:
    """The stack's jlpm: yarn.js of the locked jupyter-builder wheel,
    downloaded into stackgen's cache (verified) and unpacked once."""
    folder = cache / "jlpm" / builder.sha256[:16]
    target = folder / "yarn.js"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        download(Wanted(builder.file, builder.url, f"sha256:{builder.sha256}",
                        f"{builder.name} {builder.version}", "stackgen lock"), folder)
        with zipfile.ZipFile(folder / builder.file) as wheel:
            data = wheel.read(labbuild.YARN_JS)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        (folder / builder.file).unlink()
    return target


def resolve_tree(ext: LockedNpm, *, lab_version: str, yarn_js: Path, cache: Path,
                 workdir: Path, known: dict[str, NpmTarball],
                 progress: Callable[[str], None]) -> LockedNpm:
    """`ext` with the npm tree its build installs and yarn's yarn.lock."""
    tarballs = cache / "npm"
    tarballs.mkdir(parents=True, exist_ok=True)
    if not (tarballs / ext.file).exists() or \
            digest_for(tarballs / ext.file, ext.integrity) != ext.integrity:
        download(Wanted(ext.file, ext.url, ext.integrity, f"npm {ext.text}",
                        f"stackgen lock after changing {ext.name} in stack.yaml"), tarballs)
    folder = workdir / ext.file[:-len(".tgz")]
    labbuild.prepare(tarballs / ext.file, folder, lab_version, npm.REGISTRY)
    node = node_folder(workdir)
    env = clean_env(labbuild.node_environment(node, workdir, clean_env()["PATH"],
                                              yarn_cache=cache / "yarn-cache"))
    progress(f"resolving the npm dependencies of {ext.text} with jlpm (yarn; a minute "
             "when its cache is cold)")
    run(labbuild.install_argv(str(node / "node"), yarn_js, immutable=False), env=env, cwd=folder,
        describe=f"jlpm install for {ext.text}", logfile=workdir / f"{ext.file}.jlpm.log",
        heartbeat=lambda s: progress(f"still resolving the npm dependencies of {ext.text} "
                                     f"({s:.0f} s)"))
    yarn_lock = (folder / "yarn.lock").read_text(encoding="utf-8")
    try:
        packages = npm.yarn_lock_packages(yarn_lock)
    except ValueError as exc:
        raise StackgenError(f"source extension {ext.text}: {exc}",
                            "only npm registry packages can be locked by integrity") from None
    progress(f"{ext.text}: yarn resolved {len(packages)} npm packages; asking the registry "
             "for their integrities")
    tree = npm.tarball_dists(packages, known)
    labbuild.drop_build_leftovers(folder)
    return replace(ext, tree=tuple(tree), yarn_lock=yarn_lock)


def load_known(cache: Path) -> dict[str, NpmTarball]:
    """Integrities asked of the registry before ("name@version" -> NpmTarball):
    a published npm version never changes."""
    try:
        data = json.loads((cache / "npm-dists.json").read_text())
        return {key: NpmTarball(*value) for key, value in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


def save_known(cache: Path, known: dict[str, NpmTarball]) -> None:
    write_atomic(cache / "npm-dists.json", json.dumps(
        {key: [t.name, t.version, t.integrity, t.url] for key, t in sorted(known.items())},
        indent=0, sort_keys=True))
