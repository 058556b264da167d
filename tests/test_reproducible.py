"""The lock and the easyconfigs are reproducible: on a clean clone of the
committed tree, with caches of its own (nothing resolved or downloaded
before) and ambient pip and uv configuration naming an index that does not
answer, `stackgen lock` (uv, the default resolver, from PyPI; the stack's
lock and the hub environment's), then the npm
part locked again from the npm registry (`-P` of the source extension: yarn
resolves its tree, the registry gives each integrity), then `stackgen
render` (from the same, hash-verified wheels) give the committed files
byte for byte. A newer npm release inside
one of the tree's ranges would show here as a moved version, named in the
diff: the lock moved, not the host."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, run_stackgen

pytestmark = [pytest.mark.network, pytest.mark.lmod]

DEAD_INDEX = "http://127.0.0.1:9/simple"       # nothing listens on port 9 (discard)


def git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def hostile_environment(tmp_path) -> dict[str, str]:
    """This user's environment with caches of its own, and pip and uv told
    (by variables and by config files) to use an index that does not answer."""
    config = tmp_path / "config"
    (config / "pip").mkdir(parents=True)
    (config / "pip" / "pip.conf").write_text(f"[global]\nindex-url = {DEAD_INDEX}\n")
    (config / "uv").mkdir()
    (config / "uv" / "uv.toml").write_text(f'index-url = "{DEAD_INDEX}"\n')
    return dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_CONFIG_HOME=str(config),
                PIP_CONFIG_FILE=str(config / "pip" / "pip.conf"), PIP_INDEX_URL=DEAD_INDEX,
                UV_INDEX_URL=DEAD_INDEX, UV_DEFAULT_INDEX=DEAD_INDEX)


def changed(clone) -> str:
    """What differs from the committed tree: nothing, or the diff's head."""
    status = git("status", "--porcelain", cwd=clone)
    return status and status + git("diff", "--stat", cwd=clone) + git("diff", cwd=clone)[:4000]


def wheelhouse_like(cache_dir, target):
    """A wheelhouse holding what the session's holds (linked, else copied): the
    lock pins every file by its hash and render verifies each, so where the
    bytes came from cannot change them; render downloads what is missing."""
    target.mkdir()
    for file in (cache_dir / "wheelhouse").glob("*"):
        if file.is_file() and not file.name.endswith(".yarn.lock"):
            try:
                os.link(file, target / file.name)
            except OSError:
                shutil.copy2(file, target / file.name)
    return target


def test_relock_and_render_on_a_clean_clone_give_the_committed_bytes(tmp_path, cache_dir):
    clone = tmp_path / "clone"
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(clone), cwd=tmp_path)
    # the base stand-in is made by ./bootstrap beside each checkout, never committed
    (clone / ".standin").symlink_to(REPO / ".standin")
    with open(clone / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write(".standin\n")          # .gitignore's .standin/ names a folder, not a link
    env = hostile_environment(tmp_path)
    npm_names = [ext.split("@")[0] if not ext.startswith("@") else "@" + ext[1:].split("@")[0]
                 for module in yaml.safe_load((clone / "stack.yaml").read_text())["modules"].values()
                 for ext in module.get("source_extensions", [])]
    assert npm_names, "the reference stack has a source extension: the npm part is tested here"

    lock = run_stackgen("lock", cwd=clone, env=env, timeout=1800)
    assert lock.returncode == 0, lock.stdout + lock.stderr[-3000:]
    assert "uv" in lock.stdout + lock.stderr
    assert "resolving the hub's environment" in lock.stdout + lock.stderr     # its lock too
    assert (clone / "lockfiles" / "jupyter-2026.11.hub.txt").is_file()
    assert not changed(clone), changed(clone)

    args = [arg for name in npm_names for arg in ("-P", name)]
    npm = run_stackgen("lock", *args, cwd=clone, env=env, timeout=1800)
    assert npm.returncode == 0, npm.stdout + npm.stderr[-3000:]
    assert "resolving the npm dependencies" in npm.stdout + npm.stderr
    assert not changed(clone), changed(clone)

    shutil.rmtree(clone / "easyconfigs")
    wheelhouse = wheelhouse_like(cache_dir, tmp_path / "wheelhouse")
    render = run_stackgen("render", "--wheelhouse", str(wheelhouse), cwd=clone, env=env,
                          timeout=1800)
    assert render.returncode == 0, render.stdout + render.stderr[-3000:]
    assert not changed(clone), changed(clone)
