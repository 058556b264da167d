"""The service end to end: JupyterHub from PyPI with batchspawner and
configurable-http-proxy from npm, started from the configuration `stackgen
hub-config` generates, spawns the stack's lab as a Slurm job on the two-node
test cluster for a real account that logs in with its password.

One built stack, one Slurm cluster and one hub for the whole module:
refused answers submit nothing; a form of 2 nodes with both parallel
contexts gives a lab whose kernel sees 4 MPI engines and dask workers on
both nodes with no-argument clients, and stopping it from the hub leaves
nothing behind; headless Chromium logs in, sees the site's form, spawns and
finds the dask sidebar connected (screenshots kept)."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

import hub as hubs
from conftest import run_stackgen
from e2e import KERNEL_CLIENT, login_shell, with_lab
from hubweb import WebClient, read_form, spawn_error
from parallel_e2e import client_cell, last_json, states_report, wait_no_context_processes

pytestmark = [pytest.mark.slow, pytest.mark.lmod, pytest.mark.slurm]

BROWSER_CHECK = Path(__file__).resolve().parent / "hub_browser_check.py"
# The site's fields (the contract of `stackgen hub-config`'s form).
FIELDS = {"partition", "reservation", "nodes", "time", "account", "ipyparallel",
          "ipyparallel_procs_per_node", "dask", "dask_tasks_per_node"}


@pytest.fixture(scope="module")
def hub_config(built_stack, tmp_path_factory) -> Path:
    """`stackgen hub-config -o DIR --prefix PREFIX` for the built stack: DIR."""
    out = tmp_path_factory.mktemp("hub-config")
    result = run_stackgen("hub-config", "-o", str(out), "--prefix", str(built_stack.prefix),
                          cwd=built_stack.spec)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def hub_user():
    user = hubs.make_user()
    yield user
    hubs.remove_user(user)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory, pytestconfig) -> Path:
    """Screenshots and logs, kept: the folder is named in pytest's output."""
    folder = hubs.artefacts_dir(tmp_path_factory)
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nhub test artefacts (screenshots, logs): {folder}")
    return folder


@pytest.fixture(scope="module")
def hub(built_stack, slurm_cluster, hub_config, hub_user, tmp_path_factory, artefacts):
    if not shutil.which("sudo"):
        pytest.fail("batchspawner submits with sudo, which is missing: ./bootstrap env installs it")
    work = tmp_path_factory.mktemp("hub")
    software = hubs.install_hub(work, hub_config)
    made = hubs.Hub(software, hub_config / "jupyterhub_config.py", slurm_cluster, hub_user, work / "run").start()
    try:
        yield made
    finally:
        made.stop()
        hubs.copy_logs(hub_user, made, artefacts)
        # the proxy and the idle culler run in sessions of their own: stop found them
        assert any("configurable-http-proxy" in c for c in made.started_commands), made.started_commands
        assert any("jupyterhub_idle_culler" in c for c in made.started_commands), made.started_commands
        assert made.leftovers() == []


def answers(page: str, **changes) -> dict:
    """The form as the site fills it in, with changes (None: unticked)."""
    form = read_form(page).defaults
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


@pytest.fixture
def logged_in(hub, hub_user) -> WebClient:
    client = WebClient(hub.url)
    status, where, page = client.login(hub_user)
    assert status == 302, (status, where, page[-2000:])
    return client


@pytest.mark.parametrize("change, field", [
    ({"partition": "debug"}, "partition"),                          # a partition not offered
    ({"nodes": "10000"}, "nodes"),
    ({"account": "x;touch /tmp/pwned"}, "account"),                 # shell metacharacters
    ({"reservation": "$(touch /tmp/pwned)"}, "reservation"),
    ({"time": "00:30:00\n#SBATCH --uid=0"}, "time"),
], ids=["partition", "nodes", "account", "reservation", "time"])
def test_an_answer_outside_the_choices_is_refused_and_submits_nothing(hub, hub_user, slurm_cluster, logged_in,
                                                                      change, field):
    status, _, page = logged_in.request("GET", "/hub/spawn")
    assert status == 200, page[-2000:]
    form = answers(page, **change)
    (status, where, page), submitted = hubs.submissions_during(slurm_cluster, lambda: logged_in.request(
        "POST", f"/hub/spawn/{hub_user.name}", form=form, follow=False))
    message = spawn_error(page)
    assert message and field in message.lower(), (status, where, message, page[-3000:])
    assert status == 400
    assert submitted == []          # slurmctld received no submission, not even a refused one
    assert hubs.job_ids(slurm_cluster, hub_user) == []
    assert hub.server(hub_user.name) is None
    assert not Path("/tmp/pwned").exists()


def test_answers_through_the_rest_api_are_checked_too(hub, hub_user, slurm_cluster):
    """The REST API skips the form: its options are checked all the same."""
    (status, reply), submitted = hubs.submissions_during(slurm_cluster, lambda: hub.api(
        "POST", f"/users/{hub_user.name}/server",
        {"partition": "test", "nodes": "1", "account": "x;touch /tmp/pwned"}))
    assert status == 400 and "account" in str(reply), (status, reply)
    assert submitted == []
    assert hub.server(hub_user.name) is None
    assert not Path("/tmp/pwned").exists()


def test_the_form_spawns_a_two_node_job_whose_kernel_sees_both_contexts(hub, hub_user, slurm_cluster,
                                                                        built_stack, logged_in, artefacts):
    status, _, page = logged_in.request("GET", "/hub/spawn")
    assert status == 200
    assert read_form(page).fields >= FIELDS, read_form(page).fields
    assert "test" in read_form(page).options["partition"]
    form = answers(page, partition="test", nodes="2", ipyparallel="mpi", ipyparallel_procs_per_node="2",
                   dask="on", dask_tasks_per_node="1")
    (status, where, page), submitted = hubs.submissions_during(slurm_cluster, lambda: logged_in.request(
        "POST", f"/hub/spawn/{hub_user.name}", form=form, follow=False))
    try:
        assert status == 302 and spawn_error(page) == "", (status, where, spawn_error(page))
        assert len(submitted) == 1, submitted    # what the refusals' check sees of one submission
        server = hub.wait_ready(hub_user.name)
        (job,) = hubs.job_ids(slurm_cluster, hub_user)
        queue = slurm_cluster.run(["squeue", "-h", "-j", job, "-o", "%u %T %D %N"]).stdout.split()
        assert queue[:3] == [hub_user.name, "RUNNING", "2"], queue

        status, where, lab = logged_in.request("GET", f"/user/{hub_user.name}/lab")
        assert status == 200 and where.endswith(f"/user/{hub_user.name}/lab"), (status, where)
        assert "jupyter-config-data" in lab

        status, token = hub.api("POST", f"/users/{hub_user.name}/tokens", {"note": "the test's kernel"})
        assert status == 201, token
        code = client_cell(("ipyparallel", "dask"), mpi=True)
        ran = login_shell(with_lab(built_stack.prefix, shlex.join(
            ["python", "-c", KERNEL_CLIENT, hub.url + server["url"].rstrip("/"), token["token"], code])),
            home=built_stack.home, timeout=600)
        result = last_json(ran.stdout + "\n" + ran.stderr)
        assert result["states"] == {"ipyparallel": "ready", "dask": "ready"}, states_report(result)
        assert result["ids"] == [0, 1, 2, 3]
        assert result["engines"] == ["n1", "n1", "n2", "n2"]
        assert result["mpi"] == [[0, 10], [1, 10], [2, 10], [3, 10]]
        assert result["workers"] == ["n1", "n2"] and result["sum"] == 160000.0
    finally:
        if hub.server(hub_user.name):
            hub.stop_server(hub_user.name)
    assert slurm_cluster.wait_for_job(job, timeout=120) in ("CANCELLED", "COMPLETED")
    assert slurm_cluster.run(["squeue", "-h"]).stdout.strip() == ""
    assert wait_no_context_processes(result["session"]) == []
    assert hubs.wait_no_processes(hub_user.uid) == []


def test_chromium_logs_in_spawns_and_finds_the_dask_sidebar_connected(hub, hub_user, slurm_cluster,
                                                                      built_stack, artefacts):
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is missing: ./bootstrap env installs it")
    node = slurm_cluster.nodes[0]
    # the browser in a node's network namespace: it reaches the hub on the
    # bridge and nothing else (the nodes have no route beyond it)
    script = with_lab(built_stack.prefix, shlex.join([
        "nsenter", f"--net={node.netns_path}", "--", "python", str(BROWSER_CHECK),
        hub.url, hub_user.name, hub_user.password, str(artefacts)]))
    try:
        ran = login_shell(script, home=built_stack.home, timeout=900)
        seen = last_json(ran.stdout + "\n" + ran.stderr)
    finally:
        if hub.server(hub_user.name):
            hub.stop_server(hub_user.name)
    assert "timeout" not in seen and "failed" not in seen, seen
    assert set(seen["fields"]) >= FIELDS, seen
    assert seen["location"] == f"/user/{hub_user.name}/lab", seen
    assert not seen["inactive"] and "Task Stream" in seen["panels"], seen
    assert seen["errors"] == [], seen
    for name in ("login.png", "spawn.png", "lab.png"):
        assert (artefacts / name).stat().st_size > 10_000, name
    assert slurm_cluster.run(["squeue", "-h"]).stdout.strip() == ""
    assert hubs.wait_no_processes(hub_user.uid) == []
