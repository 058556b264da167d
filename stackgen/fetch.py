"""The wheelhouse: exactly the files the lock names, each checked against
its sha256, downloaded once; EasyBuild's sourcepath points at it, so the
build itself runs offline."""

from __future__ import annotations

import base64
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
from stackgen.lock import Lock

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


@dataclass(frozen=True)
class Wanted:
    """One file the lock names: where it comes from and what it must hash to."""

    file: str
    url: str
    digest: str          # "sha256:<hex>", or npm's "sha512-<base64>" integrity
    what: str            # "dask 2026.8.0", for messages
    relock: str          # what re-locks it, for the hint


def wanted(lock: Lock) -> list[Wanted]:
    files = [Wanted(p.file, p.url, f"sha256:{p.sha256}", f"{p.name} {p.version}",
                    f"stackgen lock --upgrade-package {p.name}") for p in lock.packages]
    files += [Wanted(n.file, n.url, n.integrity, f"npm {n.name}@{n.version}",
                     f"stackgen lock after changing {n.name} in stack.yaml") for n in lock.npm]
    return files


def digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    if algorithm == "sha256":
        return f"sha256:{digest.hexdigest()}"
    return f"{algorithm}-" + base64.b64encode(digest.digest()).decode()


def _algorithm(digest: str) -> str:
    return digest.split(":", 1)[0] if digest.startswith("sha256:") else digest.split("-", 1)[0]


def digest_for(path: Path, expected: str) -> str:
    """`path`'s digest written as `expected` is ("sha256:<hex>" or npm's
    "sha512-<base64>"), to compare with it."""
    return digest_of(path, _algorithm(expected))


def verify_present(files: list[Wanted], wheelhouse: Path) -> list[Wanted]:
    """Check every file already in the wheelhouse; return those still
    missing. A file with the wrong hash is deleted and refused."""
    missing = []
    for item in files:
        path = wheelhouse / item.file
        if not path.exists():
            missing.append(item)
            continue
        got = digest_for(path, item.digest)
        if got != item.digest:
            path.unlink()
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
    wheelhouse.mkdir(parents=True, exist_ok=True)
    files = wanted(lock)
    missing = verify_present(files, wheelhouse)
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


def download(item: Wanted, wheelhouse: Path) -> int:
    """Download one file, resuming a partial one; verify, then move into place."""
    target = wheelhouse / item.file
    part = wheelhouse / f".{item.file}.part"
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(item.url, headers={"User-Agent": "stackgen"})
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
        raise StackgenError(f"downloading {item.file} failed: {exc}",
                            "check the network; run the command again to resume") from None
    got = digest_for(part, item.digest)
    if got != item.digest:
        part.unlink()
        raise HashMismatch(f"{item.url}: downloaded content has {got}, the lock names "
                           f"{item.digest}; the file was deleted",
                           "the index serves other content than when the lock was made: "
                           f"re-lock with `{item.relock}` after checking why")
    os.replace(part, target)
    return target.stat().st_size
