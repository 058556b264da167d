"""One file from an index, verified: the wheelhouse's downloads on the build
host and a user overlay's, with the digests both check (a wheel's sha256,
an npm tarball's integrity)."""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.errors import InputError, StackgenError

_CHUNK = 1 << 20


class HashMismatch(InputError):
    """A file whose content is not what the lock names: deleted, refused."""


@dataclass(frozen=True)
class Wanted:
    """One file the lock names: where it comes from and what it must hash to."""

    file: str
    url: str
    digest: str          # "sha256:<hex>", or npm's "sha512-<base64>" integrity
    what: str            # "dask 2026.8.0", for messages
    relock: str          # what re-locks it, for the hint


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
