"""A build that goes wrong leaves nothing a user could load, and a wheelhouse
file that is not what the lock names stops the build before EasyBuild runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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
    """A rebuild runs beside the prefix and is swapped in only when it
    succeeded: when it fails, users keep the working module as it was."""
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



def loads_six(prefix, home):
    loaded = login_shell(f"module use {prefix}/modules/all && module load tinymod/1 && "
                         "python -c 'import six; print(six.__version__)'", home=home)
    return loaded.stdout.strip() == "1.17.0"


def built(tiny, prefix, tmp_path, **kw):
    return subprocess.Popen([sys.executable, "-m", "stackgen", "build", "--prefix", str(prefix),
                             "--wheelhouse", str(tmp_path / "wheels")], cwd=tiny,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def needs_rebuild(prefix):
    """As after an upgrade of stackgen: the next build rebuilds tinymod."""
    (prefix / "software" / "tinymod" / "1" / "share" / "stackgen" / "easyconfig-digest").unlink()


@pytest.mark.skipif(not shutil.which("strace"), reason="strace (Debian's) is installed by ./bootstrap")
@pytest.mark.parametrize("point", ["the install's exchange", "between the install and its module file"])
def test_a_rebuild_killed_while_it_swaps_in_keeps_a_working_module(tiny, tmp_path, point):
    """Killed at the two steps that make the new build visible, the module
    loads and works at once, and the next build completes the swap."""
    prefix = tmp_path / "prefix"
    first = built(tiny, prefix, tmp_path)
    assert first.wait() == 0, first.stderr.read()
    needs_rebuild(prefix)
    install = prefix / "software" / "tinymod" / "1"
    modulefile = prefix / "modules" / "all" / "tinymod" / "1.lua"
    # (strace -P names a path a system call uses; a rename matches by its source)
    syscall, path = {"the install's exchange": ("renameat2", install),
                     "between the install and its module file":
                     ("openat", install / "share" / "stackgen" / "build-id")}[point]
    old_module_text = modulefile.read_text()
    killed = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(path), "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:signal=KILL:when=1", sys.executable, "-m", "stackgen", "build",
         "--prefix", str(prefix), "--wheelhouse", str(tmp_path / "wheels")],
        cwd=tiny, capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0, "the build was not stopped there"
    assert loads_six(prefix, tmp_path), f"no working module after a kill at {point}"
    assert modulefile.read_text() == old_module_text
    again = built(tiny, prefix, tmp_path)
    assert again.wait() == 0, again.stderr.read()
    assert loads_six(prefix, tmp_path)
    assert (install / "share" / "stackgen" / "easyconfig-digest").exists()
    assert not (prefix / ".stackgen-staging").exists()


def test_a_rebuild_killed_in_the_middle_of_easybuild_leaves_the_module_working(tiny, tmp_path):
    prefix = tmp_path / "prefix"
    first = built(tiny, prefix, tmp_path)
    assert first.wait() == 0, first.stderr.read()
    needs_rebuild(prefix)
    hooks = tmp_path / "kill_hooks.py"      # the build, stackgen first, dies at this step
    hooks.write_text("import os, signal\n\n\n"
                     "def post_install_hook(self, *args, **kwargs):\n"
                     "    os.killpg(os.getpgid(0), signal.SIGKILL)\n")
    killed = built(tiny, prefix, tmp_path, env=dict(os.environ, EASYBUILD_HOOKS=str(hooks)),
                   start_new_session=True)
    assert killed.wait() == -9
    assert loads_six(prefix, tmp_path)
    assert list((prefix / ".stackgen-staging").iterdir()), "the killed build left no staging"
    again = built(tiny, prefix, tmp_path)
    assert again.wait() == 0, again.stderr.read()
    assert loads_six(prefix, tmp_path) and not (prefix / ".stackgen-staging").exists()


ROUNDS = 20


def test_two_builds_of_one_prefix_at_once_never_break_it(tiny, tmp_path):
    """Started together, 20 times: one builds, the other is refused naming
    it (or finds nothing left to do); the module loads after every round."""
    prefix = tmp_path / "prefix"
    first = built(tiny, prefix, tmp_path)
    assert first.wait() == 0, first.stderr.read()
    refused = 0
    for _ in range(ROUNDS):
        needs_rebuild(prefix)
        pair = [built(tiny, prefix, tmp_path), built(tiny, prefix, tmp_path)]
        results = [(p.wait(), p.stderr.read()) for p in pair]
        for code, err in results:
            assert "Traceback" not in err
            if code:
                assert code == 1 and f"{prefix} is being built by stackgen build pid" in err, err
                refused += 1
        assert any(code == 0 for code, _ in results)
        assert loads_six(prefix, tmp_path)
        assert (prefix / "software" / "tinymod" / "1" / "share" / "stackgen" /
                "easyconfig-digest").exists()
    assert refused, "the two builds never overlapped"


def test_an_easybuild_killed_alone_leaves_no_lock_behind(tiny, tmp_path):
    """EasyBuild's own lock lives in the staging folder of the run: an eb
    process killed by itself fails the build cleanly and blocks no later one."""
    hooks = tmp_path / "die_hooks.py"
    hooks.write_text("import os, signal\n\n\n"
                     "def post_install_hook(self, *args, **kwargs):\n"
                     "    os.kill(os.getpid(), signal.SIGKILL)\n")
    prefix, result = build_with_hooks(tiny, tmp_path, hooks.read_text())
    assert result.returncode == 1 and "EasyBuild failed to build tinymod/1" in result.stderr
    assert not (prefix / "software" / ".locks").exists()
    again = built(tiny, prefix, tmp_path)
    assert again.wait() == 0, again.stderr.read()
    assert loads_six(prefix, tmp_path)


def test_checks_passed_for_the_same_inputs_are_taken_unless_the_install_differs(tiny, tmp_path):
    """A second build of the same inputs (another prefix) takes the first's
    recorded import and pip checks; an install that is not what its wheels
    hold is checked again, and fails as it should; --recheck checks anyway."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    wheels = str(tmp_path / "wheels")

    def build(prefix, *extra, hooks=None):
        run_env = dict(env, EASYBUILD_HOOKS=str(hooks)) if hooks else env
        result = run_stackgen("build", "--prefix", str(tmp_path / prefix), "--wheelhouse", wheels,
                              *extra, cwd=tiny, env=run_env)
        logs = list((tmp_path / prefix / "software" / "tinymod" / "1" / "easybuild")
                    .glob("easybuild-tinymod-1-*.log"))
        return result, logs[0].read_text() if logs else ""

    first, log = build("a")
    assert first.returncode == 0, first.stderr
    assert "Import check of 1 modules: 0 failed" in log and "pip check` passed" in log
    second, log = build("b")
    assert second.returncode == 0, second.stderr
    assert "import check (1 modules) and pip check passed before for the same inputs" \
        in second.stdout + second.stderr
    assert "Import check of" not in log and "passed before for the same inputs" in log
    hooks = tmp_path / "hooks.py"
    hooks.write_text("import glob, os\n\n\ndef pre_sanitycheck_hook(self, *args, **kwargs):\n"
                     "    for path in glob.glob(os.path.join(self.installdir, 'lib', 'python*', "
                     "'site-packages', 'six.py')):\n        os.remove(path)\n")
    broken, _ = build("c", hooks=hooks)
    assert broken.returncode == 1
    assert "import check failed for 1 extensions: six (import six: ModuleNotFoundError" \
        in broken.stderr, broken.stderr
    assert not (tmp_path / "c" / "software" / "tinymod" / "1").exists()
    again, log = build("d", "--recheck")
    assert again.returncode == 0, again.stderr
    assert "Checks run again (--recheck)" in log and "Import check of 1 modules: 0 failed" in log
