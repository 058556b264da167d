"""The lock, made by the real resolvers (pip-tools and uv) against PyPI for
the real base (the cray-python stand-in loaded through Lmod)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest

from stackgen.site import lockfile

from conftest import REPO, run_stackgen, write_stack

pytestmark = [pytest.mark.network, pytest.mark.lmod]

BASE_PACKAGES = {"numpy", "scipy", "mpi4py", "pip", "setuptools"}


def copy_lock(locked, target):
    """The locked copy's lockfiles/ (the lock and its npm folder) into `target`;
    the names it holds."""
    import shutil
    shutil.copytree(locked[0] / "lockfiles", target / "lockfiles")
    return sorted(p.name for p in (target / "lockfiles").iterdir())


def lock_path(folder, data):
    return folder / "lockfiles" / f"{data['stack']['name']}-{data['stack']['version']}.txt"


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """The reference stack locked once with pip-tools in a copy: (folder, data, text)."""
    import yaml
    folder = tmp_path_factory.mktemp("ref")
    data = yaml.safe_load((REPO / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(REPO / p) for p in data["base"]["modulepath"]]
    write_stack(folder, data)
    result = run_stackgen("lock", "--resolver", "pip-tools", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, data, lock_path(folder, data).read_text()


def test_reference_lock_is_complete_and_hashed(locked):
    folder, data, text = locked
    lock = lockfile.read(lock_path(folder, data))
    assert len(lock.packages) >= 100
    names = {p.name for p in lock.packages}
    assert not names & BASE_PACKAGES, "base-provided packages must not be in the lock"
    assert {"jupyterlab", "dask", "distributed", "ipyparallel", "ipykernel",
            "dask-labextension", "jupyterlab-git", "jupyter-resource-usage",
            "jupyter-server-proxy"} <= names
    assert lock.package("jupyterlab").version.startswith("4.6.")
    for pkg in lock.packages:
        assert pkg.hashes and all(h.startswith("sha256:") for h in pkg.hashes)
        assert f"sha256:{pkg.sha256}" in pkg.hashes, pkg.name
    pins = [ln for ln in text.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert len(pins) == len(lock.packages)
    header = lock.header
    assert {p.split("==")[0] for p in header.base_provides} >= {"numpy", "scipy", "mpi4py"}
    assert header.resolver.startswith("pip-tools ")
    # the hub's environment, whole and hashed, in its own file beside the lock
    hub = lock.hub
    assert hub.spec_digest == header.spec_digest and hub.python == header.base_python
    assert {"jupyterhub": "6.1.1", "batchspawner": "1.3.0", "jupyterhub-idle-culler": "2.0.0"}.items() \
        <= hub.pins().items()
    assert {"sqlalchemy", "tornado", "traitlets", "alembic"} <= set(hub.pins())
    for pin in hub.packages:
        assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), pin.name


def hub_lock_path(folder, data):
    return lock_path(folder, data).with_name(f"{data['stack']['name']}-{data['stack']['version']}.hub.txt")


def test_lock_names_pypi_only_and_no_local_path(locked):
    folder, data, text = locked
    for bad in (str(folder), str(REPO), "file://", "/opt/", "find-links", "extra-index"):
        assert bad not in text
        assert bad not in hub_lock_path(folder, data).read_text()
    for pkg in lockfile.read(lock_path(folder, data)).packages:
        assert pkg.url.startswith("https://files.pythonhosted.org/"), pkg.url


def test_pip_accepts_the_lock_with_require_hashes(locked, tmp_path):
    folder, data, _ = locked
    from stackgen.common.run import clean_env
    from stackgen.site.base import load_base
    from stackgen.site.spec import load_stack
    base = load_base(load_stack(folder / "stack.yaml").base)

    def dry_run(requirements):
        result = subprocess.run(
            [str(base.python), "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--no-deps", "--require-hashes", "--index-url", "https://pypi.org/simple",
             "-r", str(requirements)],
            env=clean_env(base.env), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout
    assert "Would install" in dry_run(lock_path(folder, data))
    assert "jupyterhub-6.1.1" in dry_run(hub_lock_path(folder, data))      # the hub's, too


def test_relock_is_byte_identical_and_check_passes(locked):
    folder, data, text = locked
    result = run_stackgen("lock", "--resolver", "pip-tools", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "unchanged" in result.stdout
    assert lock_path(folder, data).read_text() == text
    assert lockfile.read(lock_path(folder, data)).hub.render() == hub_lock_path(folder, data).read_text()
    check = run_stackgen("check", cwd=folder)
    assert check.returncode == 0, check.stderr
    assert "current" in check.stdout


def test_check_names_an_added_extension(locked, tmp_path):
    folder, data, text = locked
    changed = dict(data, modules=dict(data["modules"]))
    jl = dict(changed["modules"]["jupyterlab"])
    jl["extensions"] = jl["extensions"] + ["jupyterlab-execute-time"]
    changed["modules"]["jupyterlab"] = jl
    write_stack(tmp_path, changed)
    copy_lock(locked, tmp_path)
    check = run_stackgen("check", cwd=tmp_path)
    assert check.returncode == 1
    assert "added to module jupyterlab: jupyterlab-execute-time" in check.stderr
    as_json = run_stackgen("check", "--json", cwd=tmp_path)
    assert as_json.returncode == 1 and '"current": false' in as_json.stdout


def test_both_resolvers_give_the_same_pins(locked, tmp_path):
    folder, data, _ = locked
    write_stack(tmp_path, data)
    result = run_stackgen("lock", "--resolver", "uv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    by_uv = lockfile.read(lock_path(tmp_path, data))
    by_pip_tools = lockfile.read(lock_path(folder, data))
    assert by_uv.pins() == by_pip_tools.pins()
    assert by_uv.hub.pins() == by_pip_tools.hub.pins()
    assert {p.name: p.file for p in by_uv.packages} == {p.name: p.file for p in by_pip_tools.packages}
    assert by_uv.header.resolver.startswith("uv ")


@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_upgrade_package_moves_only_that_package(resolver, tmp_path, reference_data):
    data = reference_data
    # An old pin of one package, then the cap dropped: the pin must stay until asked.
    capped = dict(data, modules=dict(data["modules"]))
    capped["modules"]["dask"] = dict(capped["modules"]["dask"],
                                     packages=capped["modules"]["dask"]["packages"] + ["tblib<3"])
    write_stack(tmp_path, capped)
    assert run_stackgen("lock", "--resolver", resolver, cwd=tmp_path).returncode == 0
    first = lockfile.read(lock_path(tmp_path, data)).pins()
    assert first["tblib"].startswith("1.") or first["tblib"].startswith("2.")
    write_stack(tmp_path, data)
    assert run_stackgen("lock", "--resolver", resolver, cwd=tmp_path).returncode == 0
    kept = lockfile.read(lock_path(tmp_path, data)).pins()
    assert kept == first, "without --upgrade-package the previous pins are kept"
    result = run_stackgen("lock", "--resolver", resolver, "--upgrade-package", "tblib",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    moved = lockfile.read(lock_path(tmp_path, data)).pins()
    assert int(moved["tblib"].split(".")[0]) >= 3
    assert {k: v for k, v in moved.items() if k != "tblib"} == \
        {k: v for k, v in first.items() if k != "tblib"}
    assert "~ tblib" in result.stdout


@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_conflict_is_explained_and_previous_lock_kept(resolver, locked, tmp_path):
    _, data, text = locked
    bad = dict(data, modules=dict(data["modules"]))
    bad["modules"]["dask"] = dict(bad["modules"]["dask"],
                                  packages=["dask==2026.*", "distributed==2023.1.0"])
    write_stack(tmp_path, bad)
    names = copy_lock(locked, tmp_path)
    result = run_stackgen("lock", "--resolver", resolver, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "cannot be resolved" in result.stderr
    assert "distributed" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) < 25
    assert lock_path(tmp_path, data).read_text() == text
    assert sorted(p.name for p in (tmp_path / "lockfiles").iterdir()) == names


@pytest.mark.parametrize("resolver", ["uv", "pip-tools"])
def test_a_name_missing_from_pypi_is_said_not_to_exist_at_its_line(resolver, tmp_path, reference_data):
    """Not a "clashing requirement", no pip._internal exception: the name, that
    PyPI has no such project, and where stack.yaml asks for it."""
    data = reference_data
    bad = dict(data, modules={"x": {"packages": ["six", "no-such-package-stackgen-test==1.0"]}})
    path = write_stack(tmp_path, bad)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "no-such-package-stackgen-test" in text)
    result = run_stackgen("lock", "--resolver", resolver, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert (f"stack.yaml:{line}:" in result.stderr and "modules.x.packages[1]" in result.stderr
            and "no project named no-such-package-stackgen-test exists on PyPI" in result.stderr), \
        result.stderr
    for wrong in ("Traceback", "pip._internal", "clash", "cannot be resolved"):
        assert wrong not in result.stderr, result.stderr
    assert not (tmp_path / "lockfiles").exists() or not any((tmp_path / "lockfiles").iterdir())


def test_a_changed_hub_package_moves_the_hub_lock_only(tmp_path, reference_data):
    data = reference_data
    write_stack(tmp_path, data)
    shutil.copytree(REPO / "lockfiles", tmp_path / "lockfiles")
    before = lockfile.read(lock_path(tmp_path, data))
    hub = dict(data["hub"], packages=["batchspawner==1.3.0", "jupyterhub-idle-culler==1.4.0"])
    write_stack(tmp_path, dict(data, hub=hub))
    result = run_stackgen("lock", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = lockfile.read(lock_path(tmp_path, data))
    assert after.packages == before.packages and after.npm == before.npm
    assert after.hub.pins()["jupyterhub-idle-culler"] == "1.4.0"
    kept = {n: v for n, v in after.hub.pins().items() if before.hub.pins().get(n) == v}
    assert {"jupyterhub", "batchspawner", "sqlalchemy", "tornado"} <= set(kept)
    assert run_stackgen("check", cwd=tmp_path).returncode == 0


def test_interrupted_lock_leaves_previous_untouched(locked, tmp_path):
    _, data, text = locked
    write_stack(tmp_path, data)
    names = copy_lock(locked, tmp_path)
    target = lock_path(tmp_path, data)
    proc = subprocess.Popen([sys.executable, "-m", "stackgen", "lock", "--upgrade"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert target.read_text() == text
    assert sorted(p.name for p in (tmp_path / "lockfiles").iterdir()) == names
    assert "Traceback" not in err


def test_committed_lock_is_current(repo):
    """The lock in lockfiles/ matches stack.yaml and the base stand-in."""
    result = run_stackgen("check", "--json", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr


def _changed_exts(old: str, new: str) -> set[str]:
    """Names of the exts_list entries that hold the lines a diff changes."""
    import re
    owners = set()
    for text, tag in ((old, "-"), (new, "+")):
        lines = text.splitlines()
        other = (new if tag == "-" else old).splitlines()
        for i, line in enumerate(lines):
            if line in other:
                continue
            owner = None
            for previous in reversed(lines[:i + 1]):
                match = re.match(r"    \('([^']+)', '", previous)
                if match:
                    owner = match.group(1)
                    break
            owners.add(owner)
    return owners


def test_upgrade_package_changes_only_its_easyconfig_lines(tmp_path, reference_data):
    data = reference_data
    capped = dict(data, modules=dict(data["modules"]))
    capped["modules"]["dask"] = dict(capped["modules"]["dask"],
                                     packages=capped["modules"]["dask"]["packages"] + ["tblib<3"])
    write_stack(tmp_path, capped)
    assert run_stackgen("lock", "--resolver", "uv", cwd=tmp_path).returncode == 0
    write_stack(tmp_path, data)
    assert run_stackgen("lock", "--resolver", "uv", cwd=tmp_path).returncode == 0
    first = run_stackgen("render", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_text() for p in (tmp_path / "easyconfigs").glob("*.eb")}
    again = run_stackgen("render", "--check", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert run_stackgen("lock", "--resolver", "uv", "-P", "tblib", cwd=tmp_path).returncode == 0
    assert run_stackgen("render", cwd=tmp_path).returncode == 0
    after = {p.name: p.read_text() for p in (tmp_path / "easyconfigs").glob("*.eb")}
    changed = [name for name in before if before[name] != after[name]]
    assert changed == ["dask-2026.11.eb"]
    assert _changed_exts(before["dask-2026.11.eb"], after["dask-2026.11.eb"]) == {"tblib"}
