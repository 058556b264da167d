"""One file from an index, verified: the wheelhouse's downloads on the build
host and a user overlay's, with the digests both check (a wheel's sha256,
an npm tarball's integrity)."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.errors import InputError, StackgenError
from stackgen.common.fsutil import write_atomic

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


def digest_for(path: Path, expected: str, memo: DigestMemo | None = None) -> str:
    """`path`'s digest written as `expected` is ("sha256:<hex>" or npm's
    "sha512-<base64>"), to compare with it; taken from `memo` when the file
    is unchanged since `memo` took it."""
    if memo is not None:
        return memo.digest(path, _algorithm(expected))
    return digest_of(path, _algorithm(expected))


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DigestMemo:
    """Digests of files kept with their stat data (size, mtime, ctime, inode,
    device), as git's index keeps its files': a file whose stat data are
    what they were when it was hashed has that digest (any write changes
    its ctime, which no one can set back). The stat is taken before the
    file is read, so a file changed while it is hashed is hashed again next
    time. Kept in one JSON file; a build verifies its wheelhouse by it in
    milliseconds, and each EasyBuild run checks its sources by it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.entries = json.loads(self.path.read_text())
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    def known(self, path: Path, algorithm: str) -> str | None:
        """The digest kept for `path` if it is unchanged since, else None."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        entry = self.entries.get(os.path.realpath(path))
        if isinstance(entry, list) and len(entry) == 7 and entry[:5] == _stat_key(st) \
                and entry[5] == algorithm:
            return entry[6]
        return None

    def digest(self, path: Path, algorithm: str) -> str:
        known = self.known(path, algorithm)
        if known is not None:
            return known
        st = os.stat(path)
        digest = digest_of(path, algorithm)
        self.entries[os.path.realpath(path)] = [*_stat_key(st), algorithm, digest]
        self.changed = True
        return digest

    def forget(self, path: Path) -> None:
        self.changed |= self.entries.pop(os.path.realpath(path), None) is not None

    def save(self) -> None:
        """Write what was added (whole or not at all); a memo that cannot be
        written is only slower next time."""
        if not self.changed:
            return
        try:
            write_atomic(self.path, json.dumps(self.entries, sort_keys=True))
            self.changed = False
        except OSError:
            pass


class DiskError(StackgenError):
    """The folder files go to cannot take them: full, read-only, not ours."""


def disk_error(path: Path, exc: OSError, doing: str) -> DiskError:
    reason = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "free space there, or give another folder",
            errno.EDQUOT: "free space in your quota, or give another folder",
            errno.EROFS: "the file system is read-only: give a writable folder",
            errno.EACCES: "you may not write there: give a folder of your own"}.get(
        exc.errno, "check the folder, then run the command again")
    return DiskError(f"{doing} {path} failed: {reason} (a disk error, not a network one)", hint)


def download(item: Wanted, wheelhouse: Path) -> int:
    """Download one file, resuming a partial one; verify, then move into place.

    A partial file that already holds every byte (a run killed between its
    last write and its rename) is verified and moved into place, not resumed
    past its end; one the server cannot resume (HTTP 416) is fetched afresh.
    A full disk removes the partial file, so a retry does not fill it more."""
    target = wheelhouse / item.file
    part = wheelhouse / f".{item.file}.part"
    if part.exists() and digest_for(part, item.digest) == item.digest:
        return _move_into_place(part, target)
    for attempt in (1, 2):
        offset = part.stat().st_size if part.exists() else 0
        try:
            _fetch(item, part, offset)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset and attempt == 1:
                _remove(part)           # not resumable from there: start afresh
                continue
            raise StackgenError(f"downloading {item.file} failed: {exc}",
                                "check the network; run the command again to resume") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise StackgenError(f"downloading {item.file} failed: {exc}",
                                "check the network; run the command again to resume") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                _remove(part)
            raise disk_error(part, exc, "writing") from None
    got = digest_for(part, item.digest)
    if got != item.digest:
        _remove(part)
        raise HashMismatch(f"{item.url}: downloaded content has {got}, the lock names "
                           f"{item.digest}; the file was deleted",
                           "the index serves other content than when the lock was made: "
                           f"re-lock with `{item.relock}` after checking why")
    return _move_into_place(part, target)


def _fetch(item: Wanted, part: Path, offset: int) -> None:
    """The bytes of `item` from `offset` on, appended to `part`. Network
    errors come as urllib's; errors of the disk as plain OSErrors."""
    request = urllib.request.Request(item.url, headers={"User-Agent": "stackgen"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(request, timeout=60) as response:
        if offset and response.status != 206:      # server ignored the range
            offset = 0
        with open(part, "ab" if offset else "wb") as fh:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except OSError as exc:             # the network, not the disk
                    raise urllib.error.URLError(exc) from None
                if not chunk:
                    break
                fh.write(chunk)


def _move_into_place(part: Path, target: Path) -> int:
    try:
        os.replace(part, target)
        return target.stat().st_size
    except OSError as exc:
        raise disk_error(target, exc, "moving the download to") from None


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
