"""Kernels on the session-built stack: a user's venv with a package the
stack lacks, behind a kernel whose name and path hold spaces, quotes and
`$(...)`; the site kernel from stack.yaml; the single-user launcher sourcing
~/.jupyterhub.env, and starting without a broken one."""

from __future__ import annotations

import json
import shlex

import pytest

from e2e import KERNEL_CLIENT, LabServer, login_shell, with_lab

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.lmod]

# Run in the module's Python: start a kernel by name through jupyter_client,
# execute one cell, print what it printed.
RUN_KERNEL = r"""
import sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=120)
out = []
def hook(msg):
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
    elif msg["msg_type"] == "error":
        out.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
try:
    kc.execute_interactive(sys.argv[2], output_hook=hook, timeout=120)
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print("".join(out), end="")
"""


@pytest.fixture(scope="module")
def home(built_stack):
    folder = built_stack.root / "home-kernels"
    folder.mkdir(exist_ok=True)
    return folder


def lab(built, home, script, **kw):
    return login_shell(with_lab(built.prefix, script), home=home, **kw)


def run_kernel(built, home, name, code):
    return lab(built, home, shlex.join(["python", "-c", RUN_KERNEL, name, code]), timeout=300)


def test_a_venv_kernel_with_hostile_names_works_and_runs_nothing_else(built_stack, home):
    marker = built_stack.root / "stray-file"
    nasty = f"my \"env\" it's $(touch {marker}) `touch {marker}`"
    venv = home / "venvs" / nasty.replace("/", "_")
    made = lab(built_stack, home, shlex.join(
        ["stackgen", "user-overlay", "venv", "create", str(venv), "--name", nasty]) + " 2>&1")
    assert made.returncode == 0, made.stdout
    installed = lab(built_stack, home, "PIP_CONFIG_FILE=/dev/null " + shlex.join(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--index-url",
         "https://pypi.org/simple", "tabulate==0.9.0"]) + " 2>&1", timeout=600)
    assert installed.returncode == 0, installed.stdout
    listed = json.loads(lab(built_stack, home, "stackgen user-overlay kernel list --json").stdout)
    (kernel,) = [k for k in listed["kernels"] if k["venv"] == str(venv)]
    assert kernel["display_name"] == f"Python ({nasty})" and not kernel["stale"]
    ran = run_kernel(built_stack, home, kernel["name"],
                     "import sys, tabulate, dask, ipyparallel, numpy; "
                     "print('ok', tabulate.__version__, sys.prefix)")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == f"ok 0.9.0 {venv}", ran.stdout + ran.stderr[-2000:]
    assert not marker.exists()
    gone = lab(built_stack, home, shlex.join(["stackgen", "user-overlay", "kernel", "remove",
                                              kernel["name"]]))
    assert gone.returncode == 0, gone.stderr


def test_kernel_add_with_modules_and_variables(built_stack, home):
    added = lab(built_stack, home, shlex.join(
        ["stackgen", "user-overlay", "kernel", "add", "with dask", "--module", "dask",
         "--env", "STACKGEN_K=a b $(c)"]) + " 2>&1")
    assert added.returncode == 0, added.stdout
    ran = run_kernel(built_stack, home, "with-dask",
                     "import os, dask; print(os.environ['STACKGEN_K'])")
    assert ran.stdout.strip() == "a b $(c)", ran.stdout + ran.stderr[-2000:]


def test_the_site_kernel_from_stack_yaml(built_stack, home):
    specs = lab(built_stack, home, "jupyter kernelspec list --json")
    assert "python3-dask" in json.loads(specs.stdout)["kernelspecs"]
    ran = run_kernel(built_stack, home, "python3-dask",
                     "import os, dask.distributed; print(os.environ['OMP_NUM_THREADS'])")
    assert ran.stdout.strip() == "1", ran.stdout + ran.stderr[-2000:]


def singleuser_server(built, home):
    launcher = str(built.prefix / "software" / "jupyterlab" / "2026.11" / "bin" /
                   "stackgen-singleuser")
    return LabServer(built.prefix, home, server=(launcher, "--", "jupyter", "lab"))


def test_singleuser_launcher_sources_jupyterhub_env(built_stack, home):
    (home / ".jupyterhub.env").write_text("export STACKGEN_FROM_ENV_FILE='seen by kernels'\n")
    server = singleuser_server(built_stack, home)
    try:
        server.wait()
        code = "import os; print(os.environ.get('STACKGEN_FROM_ENV_FILE'))"
        ran = lab(built_stack, home, shlex.join(
            ["python", "-c", KERNEL_CLIENT, server.url, server.token, code]), timeout=300)
        assert ran.stdout.strip() == "seen by kernels", ran.stdout + ran.stderr[-2000:]
    finally:
        server.stop()


def test_a_broken_jupyterhub_env_is_reported_and_the_server_starts(built_stack, home):
    (home / ".jupyterhub.env").write_text("module load nothing-here\nif then (\n")
    server = singleuser_server(built_stack, home)
    try:
        server.wait()
        status, _ = server.get("/api/status")
        assert status == 200
    finally:
        server.stop()
        (home / ".jupyterhub.env").unlink()
    log = (home / "lab.log").read_text()
    assert "not sourcing" in log and "syntax error" in log and "line 2" in log


def test_in_a_venv_kernel_the_venvs_own_version_wins_and_the_stack_stays_below(built_stack, home):
    venv = home / "venvs" / "own-toolz"
    made = lab(built_stack, home, shlex.join(
        ["stackgen", "user-overlay", "venv", "create", str(venv), "--name", "own-toolz"]) + " 2>&1")
    assert made.returncode == 0, made.stdout
    installed = lab(built_stack, home, "PIP_CONFIG_FILE=/dev/null " + shlex.join(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--index-url",
         "https://pypi.org/simple", "toolz==0.12.1"]) + " 2>&1", timeout=600)
    assert installed.returncode == 0, installed.stdout
    ran = run_kernel(built_stack, home, "own-toolz",
                     "import toolz, ipyparallel; print(toolz.__version__, toolz.__file__)")
    assert ran.returncode == 0, ran.stderr[-3000:]
    version, path = ran.stdout.split()
    assert version == "0.12.1" and path.startswith(str(venv)), ran.stdout
    # bin/stackgen runs the module's own Python even with the user's venv active
    listed = lab(built_stack, home, f". {shlex.quote(str(venv / 'bin' / 'activate'))} && "
                 "stackgen user-overlay kernel list --json")
    assert listed.returncode == 0, listed.stderr
    assert "own-toolz" in listed.stdout
