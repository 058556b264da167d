"""The package's shape: which side imports what (import-linter's contracts),
what an install carries, small modules, no import circles, lint clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "stackgen"
BIN = Path(sys.executable).parent


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = lint_imports(REPO, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_user_module_importing_the_site_side_breaks_the_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "stackgen", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    overlay = tmp_path / "stackgen" / "user" / "overlay.py"
    overlay.write_text(overlay.read_text() + "\nfrom stackgen.site import spec  # noqa\n")
    result = lint_imports(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "stackgen.user.overlay -> stackgen.site.spec" in result.stdout


def test_the_user_side_loads_nothing_of_the_site_side():
    code = ("import sys, stackgen.user.cli, stackgen.user.overlay_commands, "
            "stackgen.user.kernel_commands; "
            "print(sorted(m for m in sys.modules if m.startswith('stackgen.site')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"


def test_the_install_carries_the_user_side_alone_and_it_runs_from_there(tmp_path):
    from stackgen.site.easyblocks.payload import copy_user_side
    target = tmp_path / "libexec" / "stackgen" / "stackgen"
    copy_user_side(str(PACKAGE), str(target))
    assert sorted(p.name for p in target.iterdir()) == ["__init__.py", "common", "session", "templates", "user"]
    assert not list(target.rglob("__pycache__"))
    # the copy alone (no checkout on the path) gives the user command
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(target.parent)}
    result = subprocess.run([sys.executable, "-m", "stackgen.user.cli", "user-overlay", "--help"],
                            env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "example:" in result.stdout


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_no_module_imports_itself_back():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("stackgen")
    circles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                circles.append(" -> ".join((module, *back)))
    assert not circles


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kernels_load_the_lab_module_by_the_name_stack_yaml_gives_it(tmp_path, monkeypatch):
    from stackgen.user import kernel_commands
    central = {"STACKGEN_STACK": "demo", "STACKGEN_STACK_VERSION": "2",
               "STACKGEN_BUNDLE": "sha256:aa", "STACKGEN_APP_DIR": "/apps/software/lab/2/share/jupyter/lab",
               "STACKGEN_PYTHON_VERSION": "3.11", "STACKGEN_MODULE": "lab/2",
               "STACKGEN_MODULEPATH": "/apps/software/lab/2/../../../modules/all"}
    for key, value in {**central, "JUPYTER_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    kernel_commands.kernel_add(Namespace(name="k", venv=None, module=[], env=[], display_name=None,
                                         install_ipykernel=False, force=False))
    launcher = (tmp_path / "kernels" / "k" / "kernel.sh").read_text()
    assert "module use /apps/modules/all " in launcher
    assert "module load lab/2 " in launcher


def test_the_faults_table_names_tests_that_exist():
    import re
    text = (REPO / "docs" / "faults.md").read_text()
    files = set(re.findall(r"`(test_\w+\.py)", text))
    named = set(re.findall(r"`(?:test_\w+\.py::)?(test_\w+)(?!\w*\.py)", text))
    defined = {m for f in (REPO / "tests").glob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", f.read_text(), re.M)}
    assert not {f for f in files if not (REPO / "tests" / f).exists()}
    assert named and not named - defined, sorted(named - defined)
