"""Building source-only lab extensions into a JupyterLab app dir, the same
way for the central bundle (StackgenBundle, inside EasyBuild) and for a
user's overlay: one environment, the two commands, and what to drop after;
and the cache of built app dirs that lets a rebuild of the same JupyterLab
with the same source extensions skip node.

The cache works as pip's cache of wheels built from sdists: the build's
output is kept under a key made of everything it is built from (JupyterLab's
staging files, which pin its own npm packages; the node that ran it; each
tarball's npm integrity; the commands), and a later build with the same key
copies it instead of running yarn and the bundler for a minute. What yarn
resolved for an extension's own dependencies is kept with it: a cached
build does not drift as the npm registry moves (`stackgen build
--no-build-cache` builds anew).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from stackgen.common.fsutil import write_atomic

# what the build fetched and its intermediate output under staging/ (static/
# holds the result): about 400 MB that nobody reads afterwards
STAGING_LEFTOVERS = ("node_modules", ".yarn", "build")


def environment(node_bin: str | os.PathLike | None, workdir: Path, path: str,
                yarn_cache: str | os.PathLike | None = None,
                own_jupyter_dirs: bool = False) -> dict[str, str]:
    """Variables for the build, on top of the caller's environment: node first
    on `path` (once); yarn's and npm's caches in `workdir`, or yarn's in a kept
    `yarn_cache` (never ~/.yarn/berry, where yarn 4 would go by itself: a home
    under quota); the system CA store, which node ignores unless told (a
    TLS-inspecting proxy's CA is there, as Python's downloads find it). With
    `own_jupyter_dirs`, Jupyter's user folders are new ones in `workdir` (the
    builder's own are kept out of a central build)."""
    if node_bin and not path.startswith(f"{node_bin}{os.pathsep}"):
        path = f"{node_bin}{os.pathsep}{path}"
    jupyter = {}
    if own_jupyter_dirs:
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data")):
            (Path(workdir) / sub).mkdir(parents=True, exist_ok=True)
            jupyter[var] = str(Path(workdir) / sub)
    return {
        **jupyter,
        "PATH": path,
        "YARN_CACHE_FOLDER": str(yarn_cache or Path(workdir) / "yarn-cache"),
        "YARN_GLOBAL_FOLDER": str(Path(workdir) / "yarn-global"),
        "YARN_ENABLE_GLOBAL_CACHE": "false",
        "npm_config_cache": str(Path(workdir) / "npm-cache"),
        "NODE_USE_SYSTEM_CA": "1",
    }


def commands(app_dir: str | os.PathLike, specs: list[str]) -> list[list[str]]:
    """`jupyter labextension install` of the npm packages or tarballs into
    `app_dir`, then one production `jupyter lab build` there."""
    app = f"--app-dir={app_dir}"
    return [["jupyter", "labextension", "install", "--no-build", app, *specs],
            ["jupyter", "lab", "build", app, "--dev-build=False", "--minimize=True"]]


def staging(install: str | os.PathLike) -> Path:
    """JupyterLab's staging folder in an install (its package's own)."""
    found = list(Path(install).glob("lib/python*/site-packages/jupyterlab/staging"))
    if len(found) != 1:
        raise ValueError(f"JupyterLab's staging folder not found in {install}")
    return found[0]


def drop_leftovers(app_dir: str | os.PathLike) -> None:
    for leftover in STAGING_LEFTOVERS:
        shutil.rmtree(Path(app_dir) / "staging" / leftover, ignore_errors=True)


# bump when what is stored, or how, changes
CACHE_FORMAT = "stackgen-lab-build-1"
# files of the built app dir that name the folder it was built in (source
# maps, the bundler's log); rewritten on restore to the folder restored into
_PATH_NAMING = ("*.map", "build_log.json")
CACHE_KEEP = 4


def build_key(staging: Path, node_version: str, integrities: list[str]) -> str:
    """What a built app dir is made of: JupyterLab's staging files (its
    package.json and yarn.lock pin the core npm packages, its bundler
    configs), the node version, the source tarballs' npm integrities and the
    build commands."""
    digest = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)

    add(CACHE_FORMAT, node_version, json.dumps(commands("APP_DIR", ["TARBALL"])), *integrities)
    for path in sorted(p for p in Path(staging).rglob("*") if p.is_file()):
        add(path.relative_to(staging).as_posix(), path.read_bytes())
    return digest.hexdigest()[:32]


def name_as(app_dir: Path, built_in: str, final: str) -> None:
    """Make the files of a built app dir that name the folder it was built in
    name `final`, where users will see it."""
    if built_in == final:
        return
    for pattern in _PATH_NAMING:
        for path in (Path(app_dir) / "static").rglob(pattern):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            if built_in in text:
                path.write_text(text.replace(built_in, final), encoding="utf-8",
                                errors="surrogateescape")


def restore(cache: Path, key: str, app_dir: Path, named_as: Path | None = None) -> bool:
    """Put the cached build `key` in place of `app_dir` (to be seen by users
    as `named_as`, when it is built elsewhere first); False when the cache
    has none (or an unreadable one, then dropped)."""
    entry, meta = _entry(cache, key)
    try:
        built_in = json.loads(meta.read_text())["app_dir"]
    except (OSError, ValueError, KeyError):
        return False
    app_dir = Path(app_dir)
    incoming = app_dir.with_name(f".{app_dir.name}.stackgen-restore")
    shutil.rmtree(incoming, ignore_errors=True)
    try:
        with tarfile.open(entry) as tar:
            tar.extractall(incoming, filter="data")
    except (OSError, tarfile.TarError):
        shutil.rmtree(incoming, ignore_errors=True)
        entry.unlink(missing_ok=True)
        return False
    name_as(incoming, built_in, str(named_as or app_dir))
    shutil.rmtree(app_dir, ignore_errors=True)
    incoming.rename(app_dir)
    os.utime(meta)                  # recently used: kept by prune
    return True


def store(cache: Path, key: str, app_dir: Path, keep: int = CACHE_KEEP,
          named_as: Path | None = None) -> None:
    """Keep the built `app_dir` (leftovers already dropped; its files naming
    it as `named_as`, when given) under `key`, written aside and renamed,
    then only the `keep` most recently used."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    entry, meta = _entry(cache, key)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=cache)
    try:
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            tar.add(app_dir, arcname=".")
        os.replace(tmp, entry)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_atomic(meta, json.dumps({"app_dir": str(named_as or app_dir),
                                   "format": CACHE_FORMAT}) + "\n")
    metas = sorted(cache.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in metas[keep:]:
        for path in _entry(cache, old.stem):
            path.unlink(missing_ok=True)


def _entry(cache: Path, key: str) -> tuple[Path, Path]:
    return Path(cache) / f"{key}.tar", Path(cache) / f"{key}.json"
