"""The prefix users load modules from, kept whole while builds run into it.

- One build at a time: `stackgen build` holds a lock on the prefix for its
  whole run; a second one is refused, naming the first (host, pid). The lock
  is a kernel file lock, so a killed build holds nothing.
- Each module is built beside the prefix, in a staging folder of its own
  (EasyBuild's installpath), and swapped in whole once it is complete: the
  install by one atomic exchange of folders, then its module file by one
  rename. A working module stays loadable for the whole build; a failed or
  killed one leaves the prefix as it was.
- A journal written before the swap lets the next build finish a swap that
  was killed half way (the new install in place, the module file not yet),
  and staging folders of dead builds are removed.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stackgen.common import layout
from stackgen.common.errors import StackgenError
from stackgen.common.fsutil import write_atomic

LOCK_FILE = ".stackgen-build.lock"
STAGING = ".stackgen-staging"
BUILD_ID = ("share", "stackgen", "build-id")     # in an install: which build made it


@contextmanager
def build_lock(prefix: Path) -> Iterator[None]:
    """Hold the prefix for one build; refuse when another build holds it."""
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fh)
            raise StackgenError(f"{prefix} is being built by {owner}",
                                "wait for that build to end (or stop it), then run stackgen "
                                "build again; two builds of one prefix would undo each other") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"stackgen build pid {os.getpid()} on {socket.gethostname()}, "
                 f"started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        recover(prefix)
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


def _owner(fh) -> str:
    """Who holds the lock, as its holder wrote it just after taking it (read
    again for a moment: the holder may be between taking and writing)."""
    for _ in range(40):
        fh.seek(0)
        owner = fh.read().strip()
        if owner:
            return owner
        time.sleep(0.025)
    return "another stackgen build"


def exchange(a: Path, b: Path) -> None:
    """Swap the folders `a` and `b` in one step (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:   # AT_FDCWD, EXCHANGE
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


@dataclass(frozen=True)
class Staging:
    """Where one module is built beside the prefix: an EasyBuild installpath."""

    prefix: Path
    root: Path                 # PREFIX/.stackgen-staging/NAME-VERSION-PID
    name: str
    version: str

    @classmethod
    def make(cls, prefix: Path, name: str, version: str) -> Staging:
        root = prefix / STAGING / f"{name}-{version}-{os.getpid()}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        return cls(prefix, root, name, version)

    @property
    def build_id(self) -> str:
        return self.root.name

    @property
    def journal(self) -> Path:
        return self.root.with_name(self.root.name + ".journal")

    def drop(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            self.root.parent.rmdir()          # the staging folder, when no other build uses it
        except OSError:
            pass

    def swap_in(self) -> None:
        """The built install and module file into the prefix, each in one step."""
        new = layout.install_dir(self.root, self.name, self.version)
        final = layout.install_dir(self.prefix, self.name, self.version)
        modulefile = layout.module_file(self.prefix, self.name, self.version)
        text = layout.module_file(self.root, self.name, self.version).read_text()
        for staged in {str(self.root), os.path.realpath(self.root)}:   # its root: the final place
            text = text.replace(staged, str(self.prefix))
        write_atomic(new.joinpath(*BUILD_ID), self.build_id + "\n")
        write_atomic(self.journal, json.dumps({"build_id": self.build_id, "install": str(final),
                                               "modulefile": str(modulefile), "text": text}))
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            try:
                exchange(new, final)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                _swap_in_two_steps(new, final, self.root)   # a file system without exchange
        else:
            os.rename(new, final)
        _finish(self.journal)
        self.drop()


def _swap_in_two_steps(new: Path, final: Path, staging: Path) -> None:
    old = staging / "previous"
    os.rename(final, old)
    os.rename(new, final)


def _finish(journal: Path) -> None:
    """The module file the journal holds, written once its install is in place."""
    entry = json.loads(journal.read_text())
    install = Path(entry["install"])
    try:
        made_by = install.joinpath(*BUILD_ID).read_text().strip()
    except OSError:
        made_by = ""
    if made_by == entry["build_id"]:
        write_atomic(Path(entry["modulefile"]), entry["text"])
    journal.unlink()


def recover(prefix: Path) -> list[str]:
    """What killed builds left in the prefix (none runs now: the lock is
    held): a swap finished, staging folders removed. Returns the builds
    whose swap it finished."""
    folder = prefix / STAGING
    finished = []
    for journal in sorted(folder.glob("*.journal")) if folder.is_dir() else []:
        staging = journal.with_suffix("")
        new = next(staging.glob("software/*/*"), None)
        entry = json.loads(journal.read_text())
        install = Path(entry["install"])
        if not install.exists() and new is not None:     # killed between two renames
            os.rename(new, install)
        _finish(journal)
        finished.append(staging.name)
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    for temp in prefix.joinpath(*layout.MODULEPATH).glob("*/.*.tmp"):   # a killed write_atomic's
        temp.unlink(missing_ok=True)
    return finished
