"""The wheelhouse: exactly the files the lock names, each checked against
its sha256, downloaded once; EasyBuild's sourcepath points at it, so the
build itself runs offline."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stackgen.errors import InputError, StackgenError
from stackgen.lock import Lock, LockedPackage

log = logging.getLogger("stackgen.fetch")

_CHUNK = 1 << 20
_PARALLEL = 4


class HashMismatch(InputError):
    """A file whose content is not what the lock names: deleted, refused."""


@dataclass(frozen=True)
class FetchReport:
    present: int
    downloaded: int
    bytes: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_present(lock: Lock, wheelhouse: Path) -> list[LockedPackage]:
    """Check every file already in the wheelhouse; return the packages still
    missing. A file with the wrong hash is deleted and refused."""
    missing = []
    for pkg in lock.packages:
        path = wheelhouse / pkg.file
        if not path.exists():
            missing.append(pkg)
            continue
        got = sha256_of(path)
        if got != pkg.sha256:
            path.unlink()
            raise HashMismatch(
                f"{path}: sha256 {got} differs from the lock's {pkg.sha256} "
                f"({pkg.name} {pkg.version}); the file was deleted",
                "run the command again to download it afresh; if it differs again, "
                "the index or a proxy serves other content than when the lock was made")
    return missing


def fetch(lock: Lock, wheelhouse: Path,
          progress: Callable[[str], None] = lambda message: None) -> FetchReport:
    """Make `wheelhouse` hold every file of `lock`, verified. No network is
    touched when everything is already present."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    missing = verify_present(lock, wheelhouse)
    present = len(lock.packages) - len(missing)
    if not missing:
        progress(f"wheelhouse complete: {present} files verified")
        return FetchReport(present, 0, 0)
    progress(f"downloading {len(missing)} files ({present} already present and verified)")
    done = 0
    total = 0
    with ThreadPoolExecutor(_PARALLEL) as pool:
        for size in pool.map(lambda pkg: download(pkg, wheelhouse), missing):
            done += 1
            total += size
            if done % 20 == 0 or done == len(missing):
                progress(f"downloaded {done}/{len(missing)} ({total / 1e6:.1f} MB)")
    return FetchReport(present, len(missing), total)


def download(pkg: LockedPackage, wheelhouse: Path) -> int:
    """Download one file, resuming a partial one; verify, then move into place."""
    target = wheelhouse / pkg.file
    part = wheelhouse / f".{pkg.file}.part"
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(pkg.url, headers={"User-Agent": "stackgen"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if offset and response.status != 206:      # server ignored the range
                offset = 0
            with open(part, "ab" if offset else "wb") as fh:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    fh.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise StackgenError(f"downloading {pkg.file} failed: {exc}",
                            "check the network; run the command again to resume") from None
    got = sha256_of(part)
    if got != pkg.sha256:
        part.unlink()
        raise HashMismatch(f"{pkg.url}: downloaded content has sha256 {got}, the lock names "
                           f"{pkg.sha256}; the file was deleted",
                           "the index serves other content than when the lock was made: "
                           "re-lock with `stackgen lock --upgrade-package "
                           f"{pkg.name}` after checking why")
    os.replace(part, target)
    return target.stat().st_size
