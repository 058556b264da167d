"""stack.yaml's hub section and `stackgen hub-config`: errors at their line,
the hub's version against the lock, and the files the command writes (the
generated configuration run against stand-ins of jupyterhub and batchspawner;
tests/test_hub_env.py runs it in a real hub environment)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types

import pytest

from stackgen.common.errors import SpecError
from stackgen.site import hubconfig, lockfile
from stackgen.site.spec import load_stack

from conftest import run_stackgen


@pytest.fixture
def stack_dir(tmp_path, repo):
    """The reference stack and its lock, in tmp_path."""
    text = (repo / "stack.yaml").read_text().replace(
        "modulepath: [site_modulefiles]", f"modulepath: [{repo / 'site_modulefiles'}]")
    (tmp_path / "stack.yaml").write_text(text)
    shutil.copytree(repo / "lockfiles", tmp_path / "lockfiles")
    return tmp_path


def edit(folder, old, new):
    path = folder / "stack.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(folder, needle):
    """The line of the hub section holding `needle`."""
    lines = (folder / "stack.yaml").read_text().splitlines()
    start = lines.index("hub:")
    return next(i for i, line in enumerate(lines[start:], start + 1) if needle in line)


@pytest.mark.parametrize("old, new, at, text", [
    ('jupyterhub: "6.1.1"', 'jupyterhub: "6.1"', "jupyterhub:", "is not valid here"),
    ("default_nodes: 1", "default_nodes: 3", "default_nodes:", "not within min_nodes 1 and max_nodes 2"),
    ('default_time: "01:00:00"', 'default_time: "03:00:00"', "default_time:", "longer than max_time"),
    ('default_time: "01:00:00"', 'default_time: "00:05:00"', "default_time:", "not longer than hub.time_warning"),
    ('max_time: "02:00:00"', 'max_time: "2h"', "max_time:", "is not valid here"),
    ("    - batchspawner==1.3.0\n", "    - batchspawner>=1.3\n", "batchspawner>=", "not pinned to one version"),
    ("    - batchspawner==1.3.0\n", "    - jupyterhub==6.1.1\n", "    - jupyterhub==", "given by hub.jupyterhub"),
    ("    - batchspawner==1.3.0\n", "", "  packages:", "lacks batchspawner"),
    ("dask_tasks_per_node: 1\n", "dask_tasks_per_node: 3\n", "dask_tasks_per_node:", "has 2 cores a node"),
    ("      cores: 2\n", "      cores: 2\n      partition: test;rm\n", "partition: test;rm", "not valid here"),
    ("    - name: test\n", "    - name: test\n      nodes: 2\n", "      nodes: 2", "unknown key 'nodes'"),
])
def test_a_bad_hub_section_is_named_at_its_line(stack_dir, old, new, at, text):
    edit(stack_dir, old, new)
    line = line_of(stack_dir, at)
    with pytest.raises(SpecError) as err:
        load_stack(stack_dir / "stack.yaml", display="stack.yaml")
    assert err.value.render().startswith(f"stack.yaml:{line}:"), err.value.render()
    assert text in err.value.render()


def test_a_partition_offered_twice_is_refused(stack_dir):
    edit(stack_dir, "  dask_tasks_per_node: 1\n",
         "    - name: test\n      cores: 2\n      max_nodes: 1\n      max_time: \"01:00:00\"\n"
         "      default_time: \"00:30:00\"\n  dask_tasks_per_node: 1\n")
    with pytest.raises(SpecError, match="partition 'test' is offered twice"):
        load_stack(stack_dir / "stack.yaml")


def test_a_hub_of_another_minor_than_the_lock_is_refused_by_check_and_hub_config(stack_dir):
    edit(stack_dir, 'jupyterhub: "6.1.1"', 'jupyterhub: "6.2.0"')
    line = line_of(stack_dir, 'jupyterhub: "6.2.0"')
    for args in (["check"], ["hub-config", "-o", str(stack_dir / "hub")]):
        done = run_stackgen(*args, cwd=stack_dir)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"stack.yaml:{line}:15: hub.jupyterhub: the hub runs "
                                      "JupyterHub 6.2.0, but the stack's servers run jupyterhub 6.1.1")
        assert "pin 'jupyterhub==6.2.*' in module jupyterlab" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (stack_dir / "hub").exists()


def test_a_patch_release_of_the_same_minor_is_fine(stack_dir):
    edit(stack_dir, 'jupyterhub: "6.1.1"', 'jupyterhub: "6.1.9"')
    stack = load_stack(stack_dir / "stack.yaml")
    hubconfig.check_versions(stack, lockfile.read(stack.lock_path))


def test_input_errors_are_messages(stack_dir, tmp_path):
    (tmp_path / "afile").write_text("")
    done = run_stackgen("hub-config", "-o", str(tmp_path / "afile"), cwd=stack_dir)
    assert done.returncode == 2 and "is not a folder" in done.stderr and "Traceback" not in done.stderr
    shutil.rmtree(stack_dir / "lockfiles")
    done = run_stackgen("hub-config", "-o", str(tmp_path / "hub"), cwd=stack_dir)
    assert done.returncode == 2 and "no lock yet" in done.stderr
    edit(stack_dir, "\nhub:\n", "\nnothub:\n")
    done = run_stackgen("hub-config", "-o", str(tmp_path / "hub"), cwd=stack_dir)
    assert done.returncode == 2 and "unknown key 'nothub'" in done.stderr


def test_the_command_writes_its_files_and_keeps_the_sites_own(stack_dir, tmp_path):
    out = tmp_path / "hub"
    done = run_stackgen("hub-config", "-o", str(out), "--prefix", "/opt/jupyter", "--json", cwd=stack_dir)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["written"] == ["stackgen_hub_config.py", "requirements.txt", "package.json",
                                 "jupyterhub_config.py"]
    assert report["launcher"] == "/opt/jupyter/software/jupyterlab/2026.11/bin/stackgen-singleuser"
    assert report["launcher_present"] is False
    # the hub's environment whole, every package pinned with its hashes: the lock's
    requirements = (out / "requirements.txt").read_text()
    assert requirements == (stack_dir / "lockfiles" / "jupyter-2026.11.hub.txt").read_text()
    pins = [line for line in requirements.splitlines() if line and line[0].isalnum()]
    for pin in ("jupyterhub==6.1.1", "batchspawner==1.3.0", "jupyterhub-idle-culler==2.0.0",
                "sqlalchemy==", "tornado==", "traitlets=="):
        assert any(line.startswith(pin) for line in pins), pin
    assert all(re.fullmatch(r"[a-z0-9.-]+==\S+ \\", line) for line in pins), pins
    assert "--no-deps --require-hashes" in done.stderr + requirements
    assert json.loads((out / "package.json").read_text())["dependencies"] == {
        "configurable-http-proxy": "5.3.0"}
    site_config = (out / "jupyterhub_config.py").read_text()
    assert "load_subconfig(_generated)" in site_config
    compile(site_config, "jupyterhub_config.py", "exec")
    (out / "jupyterhub_config.py").write_text("# the site's own\n")
    done = run_stackgen("hub-config", "-o", str(out), "--json", cwd=stack_dir)
    assert json.loads(done.stdout)["kept"] == ["jupyterhub_config.py"]
    assert (out / "jupyterhub_config.py").read_text() == "# the site's own\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(report["written"])   # no temporary left


class Config:
    """traitlets' Config, as far as a config file uses it."""

    def __getattr__(self, name):
        value = Config()
        object.__setattr__(self, name, value)
        return value


class Trait:
    def __init__(self, default, **kw):
        self.default = default

    def tag(self, **kw):
        return self.default


@pytest.fixture
def hub_stand_ins(monkeypatch):
    """jupyterhub.spawner, batchspawner and traitlets, as far as the generated file uses them."""
    class SpawnException(Exception):
        def __init__(self, message, *, reason):
            super().__init__(message)
            self.reason, self.status_code = reason, 400

    class SlurmSpawner:
        batchspawner_singleuser_cmd = "batchspawner-singleuser"
        cmd = ["jupyterhub-singleuser"]
        req_homedir = "/home/alice"
        user_options = {}

        def get_args(self):
            return []

        def get_env(self):
            return {"JUPYTERHUB_API_TOKEN": "secret"}

        async def run_command(self, cmd, input=None, env=None):
            assert cmd == "scontrol show node -o n1"
            return "NodeName=n1 Arch=x86_64 NodeAddr=10.7.0.2 NodeHostName=n1"

        async def start(self):
            self.script = await self._get_batch_script(cmd="evil", homedir="/evil")
            return "n1", 8888

    modules = {"batchspawner": types.SimpleNamespace(SlurmSpawner=SlurmSpawner),
               "jupyterhub": types.ModuleType("jupyterhub"),
               "jupyterhub.spawner": types.SimpleNamespace(SpawnException=SpawnException),
               "traitlets": types.SimpleNamespace(Dict=lambda **kw: None, Bool=Trait)}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def test_the_generated_configuration_runs_against_the_hubs_interfaces(stack_dir, tmp_path, hub_stand_ins,
                                                                      monkeypatch):
    import asyncio
    out = tmp_path / "hub"
    assert run_stackgen("hub-config", "-o", str(out), "--prefix", "/opt/jupyter", cwd=stack_dir).returncode == 0
    text = (out / "stackgen_hub_config.py").read_text()
    assert "do not edit" in text
    assert not [line for line in text.splitlines() if line.startswith(("import stackgen", "from stackgen"))]
    c = Config()
    namespace = {"get_config": lambda: c, "__name__": "config"}
    exec(compile(text, str(out / "stackgen_hub_config.py"), "exec"), namespace)
    spawner_class = c.JupyterHub.spawner_class
    assert 'name="partition"' in c.StackgenSlurmSpawner.options_form
    assert c.JupyterHub.services[0]["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=3600"]
    assert c.JupyterHub.load_roles[0]["services"] == ["idle-culler"]
    refuse = c.StackgenSlurmSpawner.options_from_form
    with pytest.raises(Exception) as err:
        refuse({"partition": ["test"], "nodes": ["10000"]})
    assert err.value.jupyterhub_message.startswith("nodes: '10000' is not a whole number from 1 to 2")

    spawner = spawner_class()
    spawner.user_options = refuse({"partition": ["test"], "nodes": ["2"], "dask": ["on"]})
    assert asyncio.run(spawner.start()) == ("10.7.0.2", 8888)      # the node's NodeAddr
    script = spawner.script
    assert "#SBATCH --nodes=2" in script and "evil" not in script
    assert script.endswith("\nexec /opt/jupyter/software/jupyterlab/2026.11/bin/stackgen-singleuser -- "
                           "batchspawner-singleuser jupyterhub-singleuser\n")
    assert spawner.get_env()["STACKGEN_DASK"] == "1"
    monkeypatch.delenv("SLURM_CONF", raising=False)
    assert "SLURM_CONF" not in spawner.get_env()
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm-test/slurm.conf")   # sbatch under sudo: the hub's cluster
    assert spawner.get_env()["SLURM_CONF"] == "/etc/slurm-test/slurm.conf"
    spawner.user_options = {"partition": "test", "nodes": "2; reboot"}     # the REST API skips the form
    with pytest.raises(Exception, match="nodes: '2; reboot' is not a whole number"):
        asyncio.run(spawner.start())


@pytest.mark.parametrize("change, code, text", [
    ("delete", 2, "the lock has no hub environment"),
    ("edit", 1, "jupyter-2026.11.hub.txt: the package section differs from the digest"),
    ("another", 1, "jupyter-2026.11.hub.txt belongs to another lock"),
])
def test_a_hub_lock_missing_edited_or_of_another_lock_is_refused(stack_dir, tmp_path, change, code, text):
    hub_lock = stack_dir / "lockfiles" / "jupyter-2026.11.hub.txt"
    if change == "delete":
        hub_lock.unlink()
    elif change == "edit":
        hub_lock.write_text(re.sub(r"^tornado==\S+", "tornado==6.0", hub_lock.read_text(), flags=re.M))
    else:
        hub_lock.write_text(re.sub(r"^# spec-digest: \S+", "# spec-digest: sha256:" + "0" * 64,
                                   hub_lock.read_text(), flags=re.M))
    done = run_stackgen("hub-config", "-o", str(tmp_path / "hub"), cwd=stack_dir)
    assert done.returncode == code and text in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "hub" / "requirements.txt").exists()


def test_a_changed_hub_package_makes_the_lock_stale_and_says_so(stack_dir):
    edit(stack_dir, "jupyterhub-idle-culler==2.0.0", "jupyterhub-idle-culler==1.4.0")
    done = run_stackgen("check", cwd=stack_dir)
    assert done.returncode == 1
    assert "added to the hub's environment: jupyterhub-idle-culler==1.4.0" in done.stdout + done.stderr
    assert "removed from the hub's environment: jupyterhub-idle-culler==2.0.0" in done.stdout + done.stderr
