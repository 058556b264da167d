"""Which base the stack's modules run on: the module decides, as Lmod loads
it. Each module finds the base it was built on by itself (stack.yaml's
base.modulepath, embedded by the build), so two checkouts' stacks work side
by side with nothing in Lmod's system modulepath; and a base loaded first is
the one every module runs on, the jupyterlab module's own python included."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from conftest import REPO, run_stackgen, write_stack
from e2e import login_shell, with_lab

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.lmod]

# Nothing from Lmod's system modulepath (/etc/lmod/modulespath, which other
# checkouts on the machine may name): only what the stack's modules say.
NO_SYSTEM_MODULEPATH = "export MODULEPATH=/usr/share/lmod/lmod/modulefiles && "
STANDIN = REPO / ".standin" / "cray-python-3.11"
ASK = "python -c 'import numpy, standin_marker; print(\"base\", standin_marker.NAME, numpy.__file__)'"


def other_checkout(root):
    """A second checkout's base: its own site_modulefiles/cray-python/3.11.lua and
    stand-in (a venv of the same Python that sees this checkout's stand-in's
    packages), told apart by a module of its own, standin_marker."""
    modules = root / "site_modulefiles" / "cray-python"
    modules.mkdir(parents=True)
    (modules / "3.11.lua").write_text((REPO / "site_modulefiles" / "cray-python" / "3.11.lua").read_text())
    venv = root / ".standin" / "cray-python-3.11"
    # made as ./bootstrap makes the stand-in: a venv of the system's python3
    python = (STANDIN / "bin" / "python3").resolve()
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if not site.is_dir():
        (site,) = venv.glob("lib/python3*/site-packages")
    (site / "this_checkouts_base.pth").write_text(
        "".join(f"{p}\n" for p in STANDIN.glob("lib/python3*/site-packages")))
    (site / "standin_marker.py").write_text('NAME = "other"\n')
    root.chmod(0o755)
    return root


def test_the_lab_module_finds_its_base_without_the_system_modulepath(built_stack):
    result = login_shell(NO_SYSTEM_MODULEPATH + with_lab(
        built_stack.prefix, "module -t list 2>&1; python -c 'import numpy; print(numpy.__file__)'"),
        home=built_stack.home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cray-python/3.11" in result.stdout
    assert str(STANDIN) in result.stdout.replace("/site_modulefiles/cray-python/../..", ""), result.stdout


def test_the_lab_modules_python_runs_on_the_base_loaded_first(built_stack, tmp_path):
    other = other_checkout(tmp_path / "other")
    script = (NO_SYSTEM_MODULEPATH + f"module use {shlex.quote(str(other / 'site_modulefiles'))} && "
              "module load cray-python/3.11 && " + with_lab(built_stack.prefix, ASK)
              + " && python3 -c 'import standin_marker, dask; print(\"dask on\", standin_marker.NAME)'")
    result = login_shell(script, home=built_stack.home)
    assert result.returncode == 0, result.stdout + result.stderr
    # the jupyterlab module's python and the other modules' python3: the loaded base
    assert "base other " in result.stdout and "dask on other" in result.stdout, result.stdout


def test_two_checkouts_stacks_side_by_side(built_stack, tmp_path):
    """A stack built on another checkout's base, used in the same shell as this
    checkout's: each module loads its own checkout's base."""
    other = other_checkout(tmp_path / "other")
    spec = tmp_path / "spec"
    write_stack(spec, {"stack": {"name": "side", "version": "1"},
                       "base": {"module": "cray-python/3.11",
                                "modulepath": [str(other / "site_modulefiles")]},
                       "modules": {"tiny": {"packages": ["six"]}}})
    prefix = tmp_path / "prefix"
    result = run_stackgen("build", "--relock", "--prefix", str(prefix), cwd=spec, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    prefix.chmod(0o755)
    tiny = (f"module use {shlex.quote(str(prefix / 'modules' / 'all'))} && module load tiny && "
            "python3 -c 'import six, standin_marker; print(\"tiny on\", standin_marker.NAME)'")
    result = login_shell(NO_SYSTEM_MODULEPATH + tiny + " && module purge && " + with_lab(
        built_stack.prefix, "python -c 'import numpy; print(\"lab on\", numpy.__file__)'; "
        "python -c 'import standin_marker' 2>/dev/null || echo 'lab: no marker'"),
        home=built_stack.home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tiny on other" in result.stdout and "lab: no marker" in result.stdout, result.stdout
