"""Shared fixtures: the checkout, stackgen run as a user runs it, stack copies."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """One download/resolver cache for the whole session (and CI runs)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(root) / "stackgen"


def run_stackgen(*args: str, cwd: Path | None = None, env: dict | None = None,
                 timeout: float = 900) -> subprocess.CompletedProcess:
    """`stackgen ARGS` in a subprocess, exactly as from a shell."""
    return subprocess.run([sys.executable, "-m", "stackgen", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@contextmanager
def small_disk(path: Path, size: str = "64k"):
    """A file system of `size` mounted on `path` for the block (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def stackgen():
    return run_stackgen


def write_stack(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def reference_data(repo) -> dict:
    """The reference stack.yaml as data, its modulepath made absolute so a
    copy elsewhere still finds the base stand-in of this checkout."""
    data = yaml.safe_load((repo / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(repo / p) for p in data["base"]["modulepath"]]
    return data


@pytest.fixture
def stack_copy(tmp_path, reference_data):
    """A writable copy of the reference stack in tmp_path: (folder, data)."""
    write_stack(tmp_path, reference_data)
    return tmp_path, reference_data


class BuiltStack:
    """The reference stack, built once per session by the real `stackgen build`
    into a prefix every user can read."""

    def __init__(self, root: Path, spec: Path, prefix: Path, home: Path, summary: dict):
        self.root, self.spec, self.prefix, self.home, self.summary = root, spec, prefix, home, summary


@pytest.fixture(scope="session")
def built_stack(tmp_path_factory) -> BuiltStack:
    import json
    import shutil
    import tempfile

    # not in /tmp: the Slurm test nodes each have a /tmp of their own, and the
    # stack is software every node of a cluster sees
    root = Path(tempfile.mkdtemp(prefix="stackgen-e2e-", dir="/var/tmp"))
    root.chmod(0o755)
    data = yaml.safe_load((REPO / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(REPO / p) for p in data["base"]["modulepath"]]
    spec = root / "spec"
    write_stack(spec, data)
    shutil.copytree(REPO / "lockfiles", spec / "lockfiles")
    shutil.copytree(REPO / "easyconfigs", spec / "easyconfigs")
    prefix = root / "prefix"
    # --recheck: every check runs here (test_stack_e2e reads them in the logs),
    # whatever a build of the same stack before recorded in this cache
    result = run_stackgen("build", "--prefix", str(prefix), "--json", "--recheck", cwd=spec,
                          timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    home = root / "home-root"
    home.mkdir()
    yield BuiltStack(root, spec, prefix, home, json.loads(result.stdout))
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster():
    """Two Slurm nodes on this host (tests/slurmcluster.py), for the session;
    torn down afterwards, failing loudly if anything it made remains."""
    from slurmcluster import SlurmCluster, missing_packages

    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster makes network namespaces: root only")
    missing = missing_packages()
    if missing:
        pytest.fail(f"the Slurm test cluster needs Debian packages {' '.join(missing)}: "
                    "run ./bootstrap env (as root)")
    cluster = SlurmCluster().start()
    yield cluster
    cluster.stop()
    left = cluster.leftovers()
    assert not left, f"the Slurm test cluster left: {', '.join(left)}"
