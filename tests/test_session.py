"""The session side's pure parts: the spawner's variables, the argv of
schedulers, workers and srun, the state file, the per-job folder and the
environment that points clients at it, readiness messages, ending processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackgen.common.errors import InputError
from stackgen.session import autostart, plan, procs, state
from stackgen.session.allocation import Allocation, cpus_per_node, node_address
from stackgen.session.place import Session, session_key, user_profile
from stackgen.session.readiness import missing_message

TWO = Allocation("42", ("n1", "n2"), "n1", "10.1.0.2", 2)


@pytest.mark.parametrize("env, args", [
    ({}, []),
    ({"STACKGEN_IPYPARALLEL": "1"}, [("ipyparallel",)]),
    ({"STACKGEN_IPYPARALLEL": "yes", "STACKGEN_IPYPARALLEL_MPI": "1",
      "STACKGEN_IPYPARALLEL_PROCS_PER_NODE": "2"},
     [("ipyparallel", "--mpi", "--procs-per-node", "2")]),
    ({"STACKGEN_DASK": "true", "STACKGEN_DASK_TASKS_PER_NODE": "1",
      "STACKGEN_DASK_THREADS_PER_TASK": "2"},
     [("dask", "--tasks-per-node", "1", "--threads-per-task", "2")]),
    ({"STACKGEN_DASK": "0", "STACKGEN_IPYPARALLEL": ""}, []),
])
def test_the_spawners_choices(env, args):
    found, problems = autostart.choices(env)
    assert [c.args for c in found] == args and problems == []


@pytest.mark.parametrize("env, problem", [
    ({"STACKGEN_DASK": "maybe"}, "STACKGEN_DASK='maybe': expected 1 or 0"),
    ({"STACKGEN_DASK": "1", "STACKGEN_DASK_TASKS_PER_NODE": "0"}, "at least 1"),
    ({"STACKGEN_IPYPARALLEL": "1", "STACKGEN_IPYPARALLEL_PROCS_PER_NODE": "two"}, "whole number"),
])
def test_a_bad_choice_is_named_and_the_other_context_still_starts(env, problem):
    env = {**env, "STACKGEN_IPYPARALLEL" if "DASK" in next(iter(env)) else "STACKGEN_DASK": "1"}
    found, problems = autostart.choices(env)
    assert len(found) == 1 and len(problems) == 1 and problem in problems[0]


def test_srun_spans_the_allocation_beside_the_server_with_a_log_per_node_and_task():
    argv = plan.srun_prefix(TWO, 2, plan.IPP_STEP, Path("/s/logs"), "ipengine", mpi="pmix")
    assert argv == ["srun", "--overlap", "--mpi=pmix", "--nodes=2", "--ntasks=4", "--ntasks-per-node=2",
                    "--job-name=stackgen-ipengines", "--kill-on-bad-exit=0",
                    "--output=/s/logs/ipengine-%N-%t.log"]


def test_scheduler_and_worker_argv():
    argv = plan.scheduler_argv("py", Path("/s/f.json"), "10.1.0.2", 8786, 8787)
    assert argv[argv.index("--host") + 1] == "10.1.0.2"
    assert argv[argv.index("--dashboard-address") + 1] == "127.0.0.1:8787"
    assert "--interface" not in argv
    argv = plan.scheduler_argv("py", Path("/s/f.json"), "10.1.0.2", 8786, 8787, interface="ib0")
    assert argv[argv.index("--interface") + 1] == "ib0" and "--host" not in argv
    worker = plan.worker_argv("py", Path("/s/f.json"), 2, "/tmp")
    assert worker[worker.index("--scheduler-file") + 1] == "/s/f.json"
    assert worker[worker.index("--nthreads") + 1] == "2"


@pytest.mark.parametrize("tasks, threads, want", [(1, None, 2), (2, None, 1), (4, None, 1), (1, 3, 3)])
def test_threads_per_task_default_to_the_nodes_cpus_shared(tasks, threads, want):
    assert plan.dask_threads(TWO, plan.DaskRequest(tasks, threads)) == want


def test_counts_below_one_are_refused():
    with pytest.raises(InputError, match="--procs-per-node"):
        plan.ipp_per_node(TWO, plan.IppRequest(0))
    assert plan.ipp_per_node(TWO, plan.IppRequest()) == {"n1": 2, "n2": 2}


def test_site_defaults_from_the_modules_file(tmp_path):
    path = tmp_path / "parallel.json"
    path.write_text(json.dumps({"start_timeout": 30, "partition": "debug", "unknown": 1}))
    options = plan.options_from({plan.DEFAULTS_VARIABLE: str(path)})
    assert options.start_timeout == 30 and options.partition == "debug"
    assert plan.options_from({}) == plan.Options()


def test_slurm_values():
    assert cpus_per_node("2(x2)", 8) == 2 and cpus_per_node("4,2", 8) == 4 and cpus_per_node(None, 8) == 8
    assert node_address("NodeName=n1 Arch=x86_64 NodeAddr=10.1.0.2 NodeHostName=n1") == "10.1.0.2"
    assert procs.parse_steps("42.0 jupyterhub\n42.3 stackgen-ipengines\n42.4 other\n",
                             "stackgen-ipengines") == ["42.3"]


def test_missing_message_names_the_node_and_its_log():
    text = missing_message({"n1": 2, "n2": 2}, {"n1": 2}, "engines", lambda n: f"/s/logs/{n}.log")
    assert text == "n2: 0 of 2 engines (log: /s/logs/n2.log)"


def test_one_folder_per_job_and_the_client_environment(tmp_path):
    env = {"HOME": str(tmp_path), "SLURM_JOB_ID": "42"}
    session = Session.of(env)
    assert session.root == tmp_path / ".local" / "state" / "stackgen" / "sessions" / "slurm-42"
    assert Session.of({**env, "SLURM_JOB_ID": "43"}).root != session.root
    assert Session.of({**env, "SLURM_CLUSTER_NAME": "alps"}).root.name == "slurm-alps-42"
    assert session_key({}, 7).startswith("local-") and session_key({}, 7).endswith("-7")
    assert Session.of({"STACKGEN_SESSION_DIR": "/x"}).root == Path("/x")
    client = session.client_env()
    assert client["IPYTHONDIR"] == str(session.root / "ipython")
    assert client["DASK_CONFIG"] == str(session.root / "dask-config")


def test_the_sessions_ipython_profile_keeps_the_users_own(tmp_path):
    own = tmp_path / ".ipython" / "profile_default"
    (own / "startup").mkdir(parents=True)
    (own / "ipython_config.py").write_text("c.InteractiveShell.colors = 'nocolor'\n")
    env = {"HOME": str(tmp_path)}
    session = Session(tmp_path / "s")
    session.prepare(env)
    assert user_profile(env, session) == own
    text = (session.profile_dir / "ipython_config.py").read_text()
    assert f"load_subconfig('ipython_config.py', path={str(own)!r})" in text
    assert (session.profile_dir / "startup").resolve() == own / "startup"
    assert (session.profile_dir / "security").is_dir()
    assert oct(session.root.stat().st_mode & 0o777) == "0o700"
    # a session's IPYTHONDIR is never taken for the user's own
    assert user_profile({**env, "IPYTHONDIR": str(session.ipython_dir)}, session) == own


def test_state_round_trip_and_an_unknown_format_is_refused(tmp_path):
    path = tmp_path / "dask.json"
    context = state.Context("dask", "ready", address="tcp://10.1.0.2:8786", job_id="42",
                            per_node={"n1": 1, "n2": 1}, logs=("/s/logs/a.log",),
                            procs=(procs.Proc("dask scheduler", 1, 2, "/s/logs/a.log"),))
    state.write(path, context)
    assert state.read(path) == context and context.expected == 2
    path.write_text(json.dumps({**context.to_dict(), "format": 99}))
    with pytest.raises(InputError, match="format 99"):
        state.read(path)
    assert state.read(tmp_path / "none.json") is None


def test_end_stops_a_process_group_and_never_a_recycled_pid(tmp_path):
    log = tmp_path / "x.log"
    proc, popen = procs.spawn("sleeper", [sys.executable, "-c", "import subprocess, time; "
                                          "subprocess.Popen(['sleep', '300']); time.sleep(300)"],
                              env={"PATH": "/usr/bin:/bin"}, log=log)
    assert procs.is_running(proc)
    stranger = procs.Proc("not ours", proc.pid, proc.start + 1, "")
    assert not procs.is_running(stranger)
    assert procs.end([proc], timeout=5) == []
    popen.wait(timeout=5)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout
    assert left == ""


def test_the_dashboard_port_is_chosen_once_per_session_and_proxied_there(tmp_path):
    from stackgen.session import daskctx
    session = Session(tmp_path / "s")
    port = daskctx.session_dashboard_port(session)
    assert daskctx.session_dashboard_port(session) == port
    entry = daskctx.proxy_config(port)["ServerProxy"]["servers"][daskctx.DASHBOARD_PATH]
    assert entry == {"port": port, "absolute_url": False, "launcher_entry": {"enabled": False}}


def test_the_start_takes_the_published_port_first_if_it_is_on_the_same_host(tmp_path):
    from stackgen.session import daskctx
    session = Session(tmp_path / "s")
    session.prepare({"HOME": str(tmp_path)})
    assert daskctx.published_port(session, "10.1.0.2") == 0            # nothing published
    daskctx.publish(session, "tcp://10.1.0.2:8786")
    assert daskctx.published_port(session, "10.1.0.2") == 8786
    assert daskctx.published_port(session, "10.1.0.3") == 0            # another node's
    session.dask_address_file.write_text("# half a file\n{\"scheduler-add")
    assert daskctx.published_port(session, "10.1.0.2") == 0
    daskctx.unpublish(session)
    assert daskctx.published_port(session, "10.1.0.2") == 0


def test_dask_labextension_looks_where_the_session_proxies_the_dashboard(tmp_path):
    import yaml

    from stackgen.site import render
    from stackgen.site.spec import load_stack

    from conftest import REPO, write_stack
    data = yaml.safe_load((REPO / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(REPO / p) for p in data["base"]["modulepath"]]
    stack = load_stack(write_stack(tmp_path, data))
    assert render.lab_overrides(stack)["dask-labextension:plugin"] == {"defaultURL": "stackgen-dask/"}
    data["settings"]["lab"]["overrides"]["dask-labextension:plugin"] = {"defaultURL": "http://x/"}
    stack = load_stack(write_stack(tmp_path / "own", data))
    assert render.lab_overrides(stack)["dask-labextension:plugin"] == {"defaultURL": "http://x/"}


def test_production_jobs_get_the_sites_defaults(tmp_path):
    from stackgen.session import production

    class Config(dict):   # traitlets' Config, as far as a config file uses it
        def __getattr__(self, name):
            return self.setdefault(name, Config())

        def __setattr__(self, name, value):
            self[name] = value

    session = Session(tmp_path / "s")
    options = plan.Options(partition="batch", account="proj1", time_limit="01:00:00")
    text = production.ipcluster_config(session, TWO, options, {"HOME": str(tmp_path)})
    config, loaded = Config(), []
    exec(compile(text, "ipcluster_config.py", "exec"),
         {"get_config": lambda: config, "load_subconfig": lambda *a, **k: loaded.append((a, k))})
    assert loaded == [(("ipcluster_config.py",), {"path": str(tmp_path / ".ipython" / "profile_default")})]
    assert config.Cluster.controller_ip == "10.1.0.2"
    engines = config.SlurmEngineSetLauncher
    assert (engines.queue, engines.account, engines.timelimit) == ("batch", "proj1", "01:00:00")
    assert engines.batch_file_name.startswith(str(session.root))
    bare = production.ipcluster_config(session, TWO, plan.Options(), {"HOME": str(tmp_path)})
    assert "queue" not in bare and "account" not in bare
    assert production.jobqueue_config(TWO) == {"jobqueue": {"slurm": {"scheduler-options": {"host": "10.1.0.2"}}}}


def test_the_sites_slurm_defaults_become_jobqueue_config(tmp_path):
    import yaml

    from stackgen.site import render
    from stackgen.site.spec import load_stack

    from conftest import REPO, write_stack
    data = yaml.safe_load((REPO / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(REPO / p) for p in data["base"]["modulepath"]]
    data["parallel"] = {"partition": "batch", "time_limit": "01:00:00", "cores": 4, "memory": "8GB"}
    data["settings"]["dask"]["jobqueue"] = {"slurm": {"memory": "16GB"}}
    config = render.dask_config(load_stack(write_stack(tmp_path, data)))
    assert config["jobqueue"]["slurm"] == {"queue": "batch", "walltime": "01:00:00", "cores": 4,
                                           "memory": "16GB"}
    assert config["distributed"] == data["settings"]["dask"]["distributed"]


def test_the_servers_session_environment(tmp_path):
    from stackgen.session import keeper
    env = {"HOME": str(tmp_path), "SLURM_JOB_ID": "7", "SLURM_CLUSTER_NAME": "c",
           "JUPYTER_CONFIG_PATH": "/own:/site", "IPYTHONDIR": "/mine"}
    session, out = keeper.session_env(env)
    assert session.root.name == "slurm-c-7"
    assert out["IPYTHONDIR"] == str(session.ipython_dir) and out["STACKGEN_USER_IPYTHONDIR"] == "/mine"
    assert out["DASK_CONFIG"] == str(session.dask_config_dir)
    keeper._dashboard_proxy(session, out)
    # last, so the user's and the site's own server config still win
    assert out["JUPYTER_CONFIG_PATH"] == f"/own:/site:{session.jupyter_config_dir}"
    keeper._dashboard_proxy(session, out)
    assert out["JUPYTER_CONFIG_PATH"].count(str(session.jupyter_config_dir)) == 1
    config = json.loads((session.jupyter_config_dir / "jupyter_server_config.json").read_text())
    assert "stackgen-dask" in config["ServerProxy"]["servers"]
    local, _ = keeper.session_env({"HOME": str(tmp_path)})
    assert local.root.name.startswith("local-") and local.root.name.endswith(f"-{__import__('os').getpid()}")
