"""The generated configuration in a real hub environment: jupyterhub,
batchspawner and jupyterhub-idle-culler from PyPI at the pins of the
generated requirements.txt (uv, no ambient pip or uv configuration). JupyterHub
loads the site's jupyterhub_config.py, which loads the generated file; its
spawner refuses bad answers the way JupyterHub 6 shows them and writes the
job. The hub itself, on the Slurm cluster, is tests/test_hub_e2e.py's."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys

import pytest
from packaging.utils import canonicalize_name

from conftest import run_stackgen

pytestmark = pytest.mark.network

CHECK = r'''
import asyncio, json, os, pwd, sys, types
from unittest import mock
import jupyterhub, batchspawner, jupyterhub_idle_culler
from jupyterhub.app import JupyterHub
from jupyterhub.spawner import SpawnException

folder = sys.argv[1]
hub = JupyterHub()                      # as `jupyterhub -f` loads it, from another folder
hub.load_config_file(os.path.join(folder, "jupyterhub_config.py"))
config = hub.config
cls = config.JupyterHub.spawner_class
from jupyterhub.objects import Hub
name = pwd.getpwuid(os.getuid()).pw_name            # batchspawner looks the user up
user = types.SimpleNamespace(name=name, escaped_name=name, url=f"/user/{name}/")
spawner = cls(config=config, user=user, hub=Hub(base_url="/hub/"), _deprecated_db_session=mock.Mock())
out = {"versions": [jupyterhub.__version__, batchspawner.__version__],
       "mro": [c.__module__ + "." + c.__name__ for c in cls.__mro__[:3]],
       "form": spawner.options_form, "services": config.JupyterHub.services,
       "roles": config.JupyterHub.load_roles}
refused = {}
for field, value in (("partition", "nope"), ("nodes", "10000"), ("time", "01:00:00; reboot")):
    try:
        spawner.run_options_from_form({field: [value]})
    except SpawnException as exc:
        refused[field] = [exc.status_code, exc.jupyterhub_message]
out["refused"] = refused
spawner.user_options = spawner.run_options_from_form(
    {"partition": ["test"], "nodes": ["2"], "time": ["00:30:00"], "ipyparallel": ["mpi"],
     "ipyparallel_procs_per_node": ["2"], "dask": ["on"], "dask_tasks_per_node": ["1"]})
async def submit(cmd, input=None, env=None):
    out["submitted"] = [cmd, input, {k: v for k, v in env.items() if k.startswith("STACKGEN")}]
    return "4242"
spawner.run_command = submit
spawner.req_homedir = "/home/alice"
async def start():
    spawner.chosen = None
    try:
        await asyncio.wait_for(spawner.start(), 0.5)
    except (asyncio.TimeoutError, Exception) as exc:
        out["after_submit"] = f"{type(exc).__name__}: {exc}"
asyncio.run(start())
print(json.dumps(out))
'''


def canonicalize(pin: str) -> str:
    name, _, version = pin.partition("==")
    return f"{canonicalize_name(name)}=={version}"


def test_the_generated_configuration_in_a_real_hub(repo, tmp_path):
    uv = shutil.which("uv", path=os.path.dirname(sys.executable))     # stackgen's own
    out, venv = tmp_path / "hub", tmp_path / "env"
    done = run_stackgen("hub-config", "-o", str(out), "--prefix", "/opt/jupyter", cwd=repo)
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_"))} | {"UV_NO_CONFIG": "1"}
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], env=env, check=True)
    # as `stackgen hub-config` says: the hub lock whole, hash-checked, nothing resolved
    subprocess.run([uv, "pip", "install", "-q", "--no-config", "--index-url", "https://pypi.org/simple",
                    "-p", str(venv / "bin" / "python"), "--no-deps", "--require-hashes",
                    "-r", str(out / "requirements.txt")], env=env, check=True, timeout=600)
    frozen = subprocess.run([uv, "pip", "freeze", "--no-config", "-p", str(venv / "bin" / "python")],
                            env=env, check=True, capture_output=True, text=True).stdout
    locked = (repo / "lockfiles" / "jupyter-2026.11.hub.txt").read_text()
    pins = {line.split(" ")[0] for line in locked.splitlines() if line[:1].isalnum()}
    assert {canonicalize(line) for line in frozen.splitlines()} == {canonicalize(p) for p in pins}
    subprocess.run([uv, "pip", "check", "--no-config", "-p", str(venv / "bin" / "python")],
                   env=env, check=True, capture_output=True)       # nothing the lock lacks
    done = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK, str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["versions"] == ["6.1.1", "1.3.0"]
    assert seen["mro"][1] == "batchspawner.batchspawner.SlurmSpawner"
    assert 'name="ipyparallel_procs_per_node"' in seen["form"]
    assert seen["refused"] == {
        "partition": [400, "partition: 'nope' is not offered here; choose one of: test"],
        "nodes": [400, "nodes: '10000' is not a whole number from 1 to 2 (nodes of partition test)"],
        "time": [400, "time: '01:00:00; reboot' is not a time limit as HH:MM:SS"]}
    assert seen["roles"][0]["scopes"] == ["list:users", "read:users:activity", "read:servers",
                                          "delete:servers"]
    cmd, script, launcher_env = seen["submitted"]
    assert cmd == f"sudo -E -u {pwd.getpwuid(os.getuid()).pw_name} sbatch --parsable"
    assert "#SBATCH --nodes=2\n#SBATCH --exclusive\n#SBATCH --time=00:30:00\n" \
           "#SBATCH --signal=B:USR1@300\n" in script
    assert script.endswith("\nexec /opt/jupyter/software/jupyterlab/2026.11/bin/stackgen-singleuser -- "
                           "batchspawner-singleuser jupyterhub-singleuser\n")
    assert launcher_env == {"STACKGEN_IPYPARALLEL": "1", "STACKGEN_IPYPARALLEL_MPI": "1",
                            "STACKGEN_IPYPARALLEL_PROCS_PER_NODE": "2", "STACKGEN_DASK": "1",
                            "STACKGEN_DASK_TASKS_PER_NODE": "1"}
