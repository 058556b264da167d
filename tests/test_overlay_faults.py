"""A user's overlay under kills and bad state: a change killed at any of its
renames leaves the old overlay or the new one, and the next command
completes or undoes it; a damaged or unreadable overlay is named, never a
traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from stackgen.user.overlay import BUNDLE_FILE, MANIFEST, Central, Manifest, Overlay, status

from conftest import REPO

# One overlay change, as `stackgen user-overlay add` makes it: a new overlay
# made whole beside the old one, then swapped in.
SWAP = """
import sys
from pathlib import Path
from stackgen.user.overlay import Manifest, Overlay
ov = Overlay(Path(sys.argv[1]))
with ov.locked():
    new = ov.scratch()
    (new / "lib").mkdir()
    (new / "lib" / "marker").write_text(sys.argv[2])
    ov.swap_in(new, Manifest("s", "v", sys.argv[2]))
"""
RENAMES_IN_A_SWAP = 5    # manifest, bundle marker, old aside, new in, `latest`


def swap(root, marker, kill_at=None):
    argv = [sys.executable, "-c", SWAP, str(root), marker]
    if kill_at:
        argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename",
                "-e", f"inject=rename:signal=KILL:when={kill_at}", *argv]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def recover(root):
    with Overlay(root).locked():
        pass


@pytest.mark.skipif(not shutil.which("strace"), reason="strace (Debian's) is installed by ./bootstrap")
@pytest.mark.parametrize("kill_at", range(1, RENAMES_IN_A_SWAP + 1))
def test_a_change_killed_at_any_rename_leaves_the_old_overlay_or_the_new(tmp_path, kill_at):
    root = tmp_path / "overlays" / "s" / "v"
    assert swap(root, "old").returncode == 0
    killed = swap(root, "new", kill_at=kill_at)
    assert killed.returncode != 0, "strace did not stop the change at that rename"
    recover(root)
    marker = (root / "lib" / "marker").read_text()
    assert marker in ("old", "new")
    # the overlay is whole: its manifest and marker say what it holds
    assert json.loads((root / MANIFEST).read_text())["bundle"] == marker
    assert (root / BUNDLE_FILE).read_text() == marker + "\n"
    # killed once the swap began (old aside), the change is completed
    assert marker == ("new" if kill_at >= 4 else "old")
    assert sorted(p.name for p in root.parent.iterdir()) == [".v.lock", "latest", "v"]
    assert Overlay(root).others() == []
    # and the next change goes through
    assert swap(root, "next").returncode == 0
    assert (root / "lib" / "marker").read_text() == "next"



def central():
    from pathlib import Path
    return Central(stack="s", version="v", bundle="sha256:aa", app_dir=Path("/app"),
                   python_version="3.11", module="lab/v", modulepath=Path("/m"))


def test_an_overlay_whose_files_are_gone_is_damaged_not_current(tmp_path):
    overlay = Overlay(tmp_path / "s" / "v")
    site = overlay.site_packages / "toolz-1.0.0.dist-info"
    site.mkdir(parents=True)
    (overlay.root / MANIFEST).write_text(
        Manifest("s", "v", "sha256:aa", packages=(("toolz", "1.0.0"),)).to_json())
    assert status(overlay, central()) == "current"
    shutil.rmtree(site)
    assert status(overlay, central()) == "damaged"


@pytest.mark.parametrize("text, found", [
    ("[1, 2]", "a JSON list, not an object"),
    ('"format"', "a JSON str, not an object"),
    ("{not json", "not a readable overlay manifest"),
    ('{"format": 1, "stack": "s"}', "not a readable overlay manifest"),
])
def test_a_manifest_that_is_not_one_is_named(tmp_path, text, found):
    overlay = Overlay(tmp_path / "s" / "v")
    overlay.root.mkdir(parents=True)
    (overlay.root / MANIFEST).write_text(text)
    from stackgen.common.errors import InputError
    with pytest.raises(InputError) as err:
        overlay.manifest()
    assert found in err.value.message and "reset" in err.value.hint


def user_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "stackgen.user.cli", *args], cwd=REPO,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True)


MODULE_ENV = {"STACKGEN_STACK": "s", "STACKGEN_STACK_VERSION": "v", "STACKGEN_BUNDLE": "sha256:aa",
              "STACKGEN_APP_DIR": "/app", "STACKGEN_PYTHON_VERSION": "3.11",
              "STACKGEN_MODULE": "lab/v", "STACKGEN_MODULEPATH": "/m"}


@pytest.mark.parametrize("place", ["a-file", "read-only-parent"])
def test_a_data_home_that_cannot_hold_an_overlay_is_an_error_not_a_traceback(tmp_path, place):
    if place == "a-file":
        home = tmp_path / "data"
        home.write_text("not a folder")
    else:
        home = tmp_path / "ro" / "data"
        (tmp_path / "ro").mkdir()
        if os.geteuid() == 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs",
                            str(tmp_path / "ro")], check=True)
        else:
            (tmp_path / "ro").chmod(0o500)
    try:
        for command in (["list"], ["reset"], ["kernel", "list"]):
            result = user_cli("user-overlay", *command,
                              env={**MODULE_ENV, "HOME": str(tmp_path), "XDG_DATA_HOME": str(home)})
            assert "Traceback" not in result.stderr, result.stderr
            if result.returncode:
                assert result.returncode == 1 and result.stderr.startswith("error: "), result.stderr
                assert str(home) in result.stderr
    finally:
        if place != "a-file" and os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(tmp_path / "ro")], check=True)
