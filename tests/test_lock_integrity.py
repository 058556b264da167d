"""A lock changed after `stackgen lock` wrote it is refused by every command
that reads it, naming the package, and nothing is fetched, rendered or
built from it."""

from __future__ import annotations

import hashlib
import re
import shutil

import pytest

from stackgen.common.errors import InputError
from stackgen.site import lockfile, npmlock

from conftest import REPO, run_stackgen

LOCK = REPO / "lockfiles" / "jupyter-2026.11.txt"


def edit_hash(text):
    """One of toolz's --hash lines, the one of its chosen file, changed."""
    chosen = re.search(r"^toolz==\S+ \\\n(?:.*\n)*?    # file: \S+ sha256:(\w+)", text, re.M).group(1)
    return text.replace(f"--hash=sha256:{chosen}", "--hash=sha256:" + "0" * 64, 1)


def delete_package(name):
    def edit(text):
        return re.sub(rf"^{name}==\S+ \\\n(?:    .*\n)+", "", text, count=1, flags=re.M)
    return edit


# (id, how the lock is changed, what the refusal names)
TAMPERED = [
    ("edited-hash", edit_hash, "toolz=="),
    ("edited-pin", lambda t: re.sub(r"^toolz==(\S+) ", "toolz==0.12.0 ", t, count=1, flags=re.M),
     "toolz==0.12.0: its file toolz-"),
    ("deleted-url", lambda t: re.sub(r"^(toolz==.*\n(?:    --hash.*\n)+    # file: .*\n)    # url: .*\n",
                                     r"\1", t, count=1, flags=re.M), "its '# url:' line is missing"),
    ("deleted-required-package", delete_package("toolz"), "missing: toolz"),
    ("deleted-top-package", delete_package("jupyterlab-git"), "missing: jupyterlab-git"),
    ("edited-requires", lambda t: t.replace("    # requires: ", "    # requires: zzz, ", 1),
     "differs from the digest in its header"),
    ("file-of-another-package", lambda t: re.sub(r"(^toolz==.*\n(?:    --hash.*\n)+    # file: )toolz",
                                                 r"\1tornado", t, count=1, flags=re.M),
     "is of tornado"),
]


def test_the_reference_lock_is_whole():
    assert len(lockfile.read(LOCK).packages) > 100


@pytest.mark.parametrize("edit, named", [c[1:] for c in TAMPERED], ids=[c[0] for c in TAMPERED])
def test_a_changed_lock_is_refused_naming_what_changed(edit, named):
    text = LOCK.read_text()
    changed = edit(text)
    assert changed != text, "the edit did not apply"
    with pytest.raises(lockfile.LockIntegrityError) as err:
        lockfile.parse(changed, "lockfiles/jupyter-2026.11.txt", npmlock.read_yarn_locks(LOCK))
    assert err.value.exit_code == 1
    assert named in err.value.message, err.value.message
    assert err.value.message.startswith("lockfiles/jupyter-2026.11.txt: ")
    assert "stackgen lock" in err.value.hint


def test_a_lock_of_the_first_format_is_refused_not_misread():
    old = LOCK.read_text().replace(f"# stackgen-lock-format: {lockfile.LOCK_FORMAT}",
                                   "# stackgen-lock-format: 1")
    with pytest.raises(InputError, match="lock format 1"):
        lockfile.parse(old, yarn_lock=npmlock.read_yarn_locks(LOCK))


def test_a_lock_of_the_second_format_is_refused_not_misread():
    """Format 2 had no npm tree for source extensions: refused, never read as
    a lock whose extensions need nothing."""
    old = LOCK.read_text().replace(f"# stackgen-lock-format: {lockfile.LOCK_FORMAT}",
                                   "# stackgen-lock-format: 2")
    with pytest.raises(InputError, match="lock format 2; this stackgen reads format 3"):
        lockfile.parse(old, yarn_lock=npmlock.read_yarn_locks(LOCK))


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.lmod
@pytest.mark.parametrize("command", ["check", "fetch", "render", "build"])
def test_every_command_reading_the_lock_refuses_it_and_changes_nothing(stack_copy, command):
    folder, _ = stack_copy
    shutil.copytree(REPO / "lockfiles", folder / "lockfiles")
    shutil.copytree(REPO / "easyconfigs", folder / "easyconfigs")
    path = folder / "lockfiles" / LOCK.name
    path.write_text(delete_package("toolz")(path.read_text()))
    before = digests(folder)
    extra = {"fetch": ["--wheelhouse", str(folder / "wheelhouse")],
             "build": ["--prefix", str(folder / "prefix")]}.get(command, [])
    result = run_stackgen(command, *extra, cwd=folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "missing: toolz" in result.stderr and "Traceback" not in result.stderr
    assert digests(folder) == before
    assert not (folder / "prefix").exists() and not (folder / "wheelhouse").exists()
