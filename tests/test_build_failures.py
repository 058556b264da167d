"""A build that goes wrong leaves nothing a user could load, and a wheelhouse
file that is not what the lock names stops the build before EasyBuild runs."""

from __future__ import annotations

import os

import pytest

from conftest import run_stackgen, write_stack
from e2e import login_shell

pytestmark = [pytest.mark.network, pytest.mark.lmod]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, repo):
    """A one-module stack, locked with uv: fast to build."""
    folder = tmp_path_factory.mktemp("tiny")
    write_stack(folder, {
        "stack": {"name": "tiny", "version": "1"},
        "base": {"module": "cray-python/3.11", "modulepath": [str(repo / "site_modulefiles")]},
        "modules": {"tinymod": {"packages": ["six==1.17.0"]}},
    })
    result = run_stackgen("lock", "--resolver", "uv", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def build_with_hooks(tiny, tmp_path, hooks_text):
    """`stackgen build` of the tiny stack with EasyBuild hooks injecting a fault."""
    hooks = tmp_path / "fault_hooks.py"
    hooks.write_text(hooks_text)
    prefix = tmp_path / "prefix"
    env = dict(os.environ, EASYBUILD_HOOKS=str(hooks))
    return prefix, run_stackgen("build", "--prefix", str(prefix), "--wheelhouse",
                                str(tmp_path / "wheels"), cwd=tiny, env=env)


FAULT_AFTER_INSTALL = ("from easybuild.tools.build_log import EasyBuildError\n\n\n"
                       "def post_install_hook(self, *args, **kwargs):\n"
                       "    raise EasyBuildError('injected fault after installation')\n")


def test_failed_build_leaves_nothing_loadable(tiny, tmp_path):
    prefix, result = build_with_hooks(tiny, tmp_path, FAULT_AFTER_INSTALL)
    assert result.returncode == 1
    assert "EasyBuild failed to build tinymod/1" in result.stderr
    assert "injected fault" in result.stderr
    assert "EasyBuild log:" in result.stderr and "Traceback" not in result.stderr
    assert not (prefix / "software" / "tinymod" / "1").exists()
    assert not list((prefix / "modules").rglob("*.lua")) if (prefix / "modules").exists() else True
    avail = login_shell(f"module use {prefix}/modules/all; module load tinymod/1 2>&1; "
                        "echo rc=$?", home=tmp_path)
    assert "rc=1" in avail.stdout
    # the same build without the fault succeeds and is then loadable
    ok = run_stackgen("build", "--prefix", str(prefix), "--wheelhouse",
                      str(tmp_path / "wheels"), cwd=tiny)
    assert ok.returncode == 0, ok.stderr
    loaded = login_shell(f"module use {prefix}/modules/all && module load tinymod/1 && "
                         "python -c 'import six; print(six.__version__)'", home=tmp_path)
    assert loaded.stdout.strip() == "1.17.0", loaded.stderr


def test_tampered_wheel_stops_the_build_before_easybuild(tiny, tmp_path):
    wheels = tmp_path / "wheels"
    fetched = run_stackgen("fetch", "--wheelhouse", str(wheels), cwd=tiny)
    assert fetched.returncode == 0, fetched.stderr
    (wheel,) = list(wheels.glob("six-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    prefix = tmp_path / "prefix"
    result = run_stackgen("build", "--prefix", str(prefix), "--wheelhouse", str(wheels), cwd=tiny)
    assert result.returncode == 2
    assert wheel.name in result.stderr and "differs from the lock" in result.stderr
    assert "EasyBuild" not in result.stderr
    assert not prefix.exists()
    assert not wheel.exists()


def test_stale_lock_is_refused(tiny, tmp_path):
    import shutil

    import yaml
    copy = tmp_path / "stale"
    shutil.copytree(tiny, copy)
    data = yaml.safe_load((copy / "stack.yaml").read_text())
    data["modules"]["tinymod"]["packages"].append("toolz")
    write_stack(copy, data)
    result = run_stackgen("build", "--prefix", str(tmp_path / "p"), cwd=copy)
    assert result.returncode == 1
    assert "stale" in result.stderr and "added to module tinymod: toolz" in result.stderr
    assert not (tmp_path / "p").exists()


def test_a_failing_import_names_the_extension_and_leaves_nothing(tiny, tmp_path):
    """The one-process import check says exactly which extension fails to
    import; the sanity check then fails and the install is removed."""
    prefix, result = build_with_hooks(tiny, tmp_path,
                                      "import glob, os\n\n\n"
                                      "def pre_sanitycheck_hook(self, *args, **kwargs):\n"
                                      "    for path in glob.glob(os.path.join(self.installdir, "
                                      "'lib', 'python*', 'site-packages', 'six.py')):\n"
                                      "        os.remove(path)\n")
    assert result.returncode == 1
    assert "import check failed for 1 extensions: six (import six: ModuleNotFoundError" \
        in result.stderr, result.stderr
    assert not (prefix / "software" / "tinymod" / "1").exists()


def test_a_failed_rebuild_puts_the_previous_install_back(tiny, tmp_path):
    """EasyBuild deletes the install it rebuilds; stackgen moves it aside
    first, and back when the rebuild fails: users keep the working module."""
    prefix = tmp_path / "prefix"
    ok = run_stackgen("build", "--prefix", str(prefix), "--wheelhouse",
                      str(tmp_path / "wheels"), cwd=tiny)
    assert ok.returncode == 0, ok.stderr
    install = prefix / "software" / "tinymod" / "1"
    modulefile = prefix / "modules" / "all" / "tinymod" / "1.lua"
    (install / "share" / "stackgen" / "easyconfig-digest").unlink()   # an older stackgen's
    (install / "previous-install").write_text("kept\n")
    module_text = modulefile.read_text()

    _, result = build_with_hooks(tiny, tmp_path, FAULT_AFTER_INSTALL)
    assert result.returncode == 1
    assert "building tinymod/1 (installed by an older stackgen" in result.stderr
    assert "EasyBuild failed to build tinymod/1" in result.stderr
    assert (install / "previous-install").read_text() == "kept\n"
    assert modulefile.read_text() == module_text
    assert not [p.name for p in install.parent.iterdir() if p.name != "1"]
    loaded = login_shell(f"module use {prefix}/modules/all && module load tinymod/1 && "
                         "python -c 'import six; print(six.__version__)'", home=tmp_path)
    assert loaded.stdout.strip() == "1.17.0", loaded.stderr

    again = run_stackgen("build", "--prefix", str(prefix), "--wheelhouse",
                         str(tmp_path / "wheels"), cwd=tiny)
    assert again.returncode == 0, again.stderr
    assert not (install / "previous-install").exists()
    assert (install / "share" / "stackgen" / "easyconfig-digest").exists()
    assert not [p.name for p in install.parent.iterdir() if p.name != "1"]


def test_a_failed_module_fails_the_run_waiting_for_it_and_is_the_error_shown(repo, tmp_path):
    """The run of a module that loads another starts while that one builds
    and waits for it; when it fails, the waiting run stops too, stackgen
    names the module that failed, and neither leaves anything behind."""
    folder = tmp_path / "pair"
    write_stack(folder, {
        "stack": {"name": "pair", "version": "1"},
        "base": {"module": "cray-python/3.11", "modulepath": [str(repo / "site_modulefiles")]},
        "modules": {"lower": {"packages": ["six==1.17.0"]},
                    "upper": {"depends": ["lower"], "packages": ["idna==3.10"]}},
    })
    locked = run_stackgen("lock", "--resolver", "uv", cwd=folder)
    assert locked.returncode == 0, locked.stderr
    hooks = tmp_path / "fault_hooks.py"
    hooks.write_text("import time\n"
                     "from easybuild.tools.build_log import EasyBuildError\n\n\n"
                     "def post_install_hook(self, *args, **kwargs):\n"
                     "    if self.name == 'lower':\n"
                     "        time.sleep(1)   # upper is waiting by now\n"
                     "        raise EasyBuildError('injected fault in lower')\n")
    prefix = tmp_path / "prefix"
    result = run_stackgen("build", "--prefix", str(prefix), "--wheelhouse",
                          str(tmp_path / "wheels"), cwd=folder,
                          env=dict(os.environ, EASYBUILD_HOOKS=str(hooks)))
    assert result.returncode == 1
    assert "upper/1: waiting for lower/1 to be built..." in result.stderr, result.stderr
    assert "EasyBuild failed to build lower/1" in result.stderr
    assert "injected fault in lower" in result.stderr
    assert "failed to build upper/1" not in result.stderr
    assert not [p for p in (prefix / "software").rglob("*") if p.is_file()]
    assert not list(prefix.rglob("*.lua"))

