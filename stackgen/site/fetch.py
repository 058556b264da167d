"""The wheelhouse: exactly the files the lock names, each checked against
its sha256, downloaded once; EasyBuild's sourcepath points at it, so the
build itself runs offline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.download import DigestMemo, HashMismatch, Wanted, digest_for, disk_error, download
from stackgen.common.fsutil import write_atomic
from stackgen.common.ui import default_cache
from stackgen.site.lockfile import Lock

log = logging.getLogger("stackgen.site.fetch")

_PARALLEL = 4


@dataclass(frozen=True)
class FetchReport:
    present: int
    downloaded: int
    bytes: int


def wanted(lock: Lock) -> list[Wanted]:
    files = [Wanted(p.file, p.url, f"sha256:{p.sha256}", f"{p.name} {p.version}",
                    f"stackgen lock --upgrade-package {p.name}") for p in lock.packages]
    files += [Wanted(n.file, n.url, n.integrity, f"npm {n.name}@{n.version}",
                     f"stackgen lock after changing {n.name} in stack.yaml") for n in lock.npm]
    # the npm trees of the source extensions' builds: one file per package
    # version, however many extensions' builds install it
    tree = {t.file: t for n in lock.npm for t in n.tree}
    files += [Wanted(t.file, t.url, t.integrity, f"npm {t.text}",
                     "stackgen lock -U (the npm tree of a source extension)")
              for _, t in sorted(tree.items()) if t.file not in {n.file for n in lock.npm}]
    return files


def put_yarn_locks(lock: Lock, wheelhouse: Path) -> None:
    """Each source extension's yarn.lock (verified when the lock was read) into
    the wheelhouse beside its tarballs, where the build takes it from."""
    for ext in lock.npm:
        if not ext.yarn_lock:
            continue
        path = wheelhouse / ext.wheelhouse_yarn_lock_file
        if not path.exists() or path.read_text(encoding="utf-8") != ext.yarn_lock:
            write_atomic(path, ext.yarn_lock)


def digest_memo_path() -> Path:
    """Where the digests of the wheelhouse's files are kept with their stat
    data (DigestMemo), for `stackgen build` and its EasyBuild runs."""
    return default_cache() / "digests.json"


def verify_present(files: list[Wanted], wheelhouse: Path,
                   memo: DigestMemo | None = None) -> list[Wanted]:
    """Check every file already in the wheelhouse (by `memo` for those
    unchanged since it hashed them); return those still missing. A file
    with the wrong hash is deleted and refused."""
    missing = []
    for item in files:
        path = wheelhouse / item.file
        if not path.exists():
            missing.append(item)
            continue
        try:
            got = digest_for(path, item.digest, memo)
        except OSError as exc:
            raise disk_error(path, exc, "reading") from None
        if got != item.digest:
            if memo is not None:
                memo.forget(path)
            try:
                path.unlink()
            except OSError as exc:
                raise HashMismatch(
                    f"{path}: {got} differs from the lock's {item.digest} ({item.what}), and "
                    f"it cannot be deleted: {exc.strerror or exc}",
                    "remove it, or let whoever keeps this wheelhouse replace it; nothing was "
                    "built from it") from None
            raise HashMismatch(
                f"{path}: {got} differs from the lock's {item.digest} "
                f"({item.what}); the file was deleted",
                "run the command again to download it afresh; if it differs again, "
                "the index or a proxy serves other content than when the lock was made")
    return missing


def fetch(lock: Lock, wheelhouse: Path,
          progress: Callable[[str], None] = lambda message: None) -> FetchReport:
    """Make `wheelhouse` hold every file of `lock`, verified. No network is
    touched when everything is already present."""
    try:
        wheelhouse.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(wheelhouse, exc, "making the wheelhouse") from None
    files = wanted(lock)
    put_yarn_locks(lock, wheelhouse)
    memo = DigestMemo(digest_memo_path())
    try:
        missing = verify_present(files, wheelhouse, memo)
    finally:
        memo.save()
    present = len(files) - len(missing)
    if not missing:
        progress(f"wheelhouse complete: {present} files verified")
        return FetchReport(present, 0, 0)
    progress(f"downloading {len(missing)} files ({present} already present and verified)")
    done = 0
    total = 0
    with ThreadPoolExecutor(_PARALLEL) as pool:
        for size in pool.map(lambda item: download(item, wheelhouse), missing):
            done += 1
            total += size
            if done % 20 == 0 or done == len(missing):
                progress(f"downloaded {done}/{len(missing)} ({total / 1e6:.1f} MB)")
    return FetchReport(present, len(missing), total)
