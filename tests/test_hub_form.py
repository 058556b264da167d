"""The hub's options form, pure: every answer is checked against what the site
offers before anything reaches Slurm, and what passes becomes exact #SBATCH
lines and launcher variables."""

from __future__ import annotations

import ast
import sys

import pytest

from stackgen.site import hubform
from stackgen.site.hubform import FormError, answers, batch_script, launcher_env, sbatch_lines

SITE = {
    "partitions": [
        {"name": "test", "description": "Test nodes", "partition": "", "constraint": "",
         "cores": 2, "min_nodes": 1, "max_nodes": 2, "default_nodes": 1,
         "max_time": "02:00:00", "default_time": "01:00:00"},
        {"name": "gpu", "description": "GPU nodes", "partition": "normal", "constraint": "gpu&a100",
         "cores": 64, "min_nodes": 1, "max_nodes": 4, "default_nodes": 1,
         "max_time": "12:00:00", "default_time": "01:00:00"},
    ],
    "reservations": ["course"], "accounts": ["proj1", "proj2"],
    "time_warning": 300, "idle_timeout": 3600, "ipyparallel": False, "dask": False,
    "dask_tasks_per_node": 1, "launcher": "/opt/jupyter/software/jupyterlab/1/bin/stackgen-singleuser",
    "proxy": "/srv/hub/node_modules/.bin/configurable-http-proxy",
}

# what the e2e test posts: 2 nodes, ipyparallel with MPI and 2 per node, dask 1 per node
POSTED = {"partition": ["test"], "reservation": [""], "nodes": ["2"], "time": ["00:30:00"],
          "account": [""], "ipyparallel": ["mpi"], "ipyparallel_procs_per_node": ["2"],
          "dask": ["on"], "dask_tasks_per_node": ["1"], "_xsrf": ["token"]}


def test_good_answers_become_exact_lines_and_variables():
    chosen = answers(SITE, POSTED)
    assert chosen == {"partition": "test", "reservation": "", "nodes": "2", "time": "00:30:00",
                      "account": "", "ipyparallel": "mpi", "ipyparallel_procs_per_node": "2",
                      "dask": "on", "dask_tasks_per_node": "1"}
    assert sbatch_lines(SITE, chosen, "/home/alice") == [
        "#SBATCH --job-name=jupyterhub",
        "#SBATCH --output=/home/alice/jupyterhub_slurmspawner_%j.log",
        "#SBATCH --chdir=/home/alice",
        "#SBATCH --export=ALL",
        "#SBATCH --partition=test",
        "#SBATCH --nodes=2",
        "#SBATCH --exclusive",
        "#SBATCH --time=00:30:00",
        "#SBATCH --signal=B:USR1@300",
    ]
    assert launcher_env(chosen) == {
        "STACKGEN_IPYPARALLEL": "1", "STACKGEN_IPYPARALLEL_MPI": "1",
        "STACKGEN_IPYPARALLEL_PROCS_PER_NODE": "2",
        "STACKGEN_DASK": "1", "STACKGEN_DASK_TASKS_PER_NODE": "1"}
    script = batch_script(SITE, chosen, "/home/alice", "/x/stackgen-singleuser -- a b")
    assert script.startswith("#!/bin/bash -l\n#SBATCH --job-name=jupyterhub\n")
    assert script.endswith("\nexec /x/stackgen-singleuser -- a b\n")
    assert "STACKGEN" not in script              # through the environment, not the text


def test_a_node_type_a_reservation_and_an_account_reach_their_lines():
    chosen = answers(SITE, {"partition": ["gpu"], "nodes": ["4"], "time": ["12:00:00"],
                            "reservation": ["course"], "account": ["proj2"]})
    lines = sbatch_lines(SITE, chosen, "/home/my user")
    assert "#SBATCH --partition=normal" in lines
    assert '#SBATCH --constraint="gpu&a100"' in lines
    assert "#SBATCH --reservation=course" in lines
    assert "#SBATCH --account=proj2" in lines
    assert '#SBATCH --chdir="/home/my user"' in lines


def test_nothing_answered_takes_the_sites_defaults_and_starts_no_context():
    chosen = answers(SITE, {})
    assert (chosen["partition"], chosen["nodes"], chosen["time"]) == ("test", "1", "01:00:00")
    assert launcher_env(chosen) == {"STACKGEN_IPYPARALLEL": "0", "STACKGEN_DASK": "0"}
    # one engine per core: the launcher's default, so no count is passed
    ipp = answers(SITE, {"ipyparallel": "mpi", "ipyparallel_procs_per_node": ""})
    assert launcher_env(ipp) == {"STACKGEN_IPYPARALLEL": "1", "STACKGEN_IPYPARALLEL_MPI": "1",
                                 "STACKGEN_DASK": "0"}


def test_validated_answers_pass_again_unchanged():
    """Stored options come back at the next spawn, and through the REST API."""
    chosen = answers(SITE, POSTED)
    assert answers(SITE, chosen) == chosen
    assert answers(SITE, {"nodes": 2, "time": "1:00:00"})["time"] == "01:00:00"


@pytest.mark.parametrize("field, value, text", [
    ("partition", "debug", "'debug' is not offered here; choose one of: test, gpu"),
    ("partition", "test;touch /tmp/owned", "not offered"),
    ("partition", "test\n#SBATCH --uid=0", "control characters"),
    ("reservation", "other", "choose one of: course"),
    ("account", "proj3 --uid=0", "choose one of: proj1, proj2"),
    ("nodes", "10000", "not a whole number from 1 to 2"),
    ("nodes", "0", "from 1 to 2"),
    ("nodes", "2 --uid=0", "not a whole number"),
    ("nodes", "$(id)", "not a whole number"),
    ("nodes", "-1", "not a whole number"),
    ("time", "02:00:01", "longer than partition test allows (02:00:00)"),
    ("time", "00:05:00", "too short"),
    ("time", "1:00", "not a time limit as HH:MM:SS"),
    ("time", "01:00:00`reboot`", "not a time limit"),
    ("ipyparallel", "on", "not a value of this box (ticked: 'mpi')"),
    ("ipyparallel_procs_per_node", "3", "from 1 to 2 (cores of a test node)"),
    ("dask", "mpi", "ticked: 'on'"),
    ("dask_tasks_per_node", "'; rm -rf ~'", "not a whole number"),
])
def test_each_bad_answer_is_refused_naming_its_field(field, value, text):
    with pytest.raises(FormError) as err:
        answers(SITE, {**POSTED, field: [value]})
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    assert text in str(err.value)


def test_a_field_given_twice_or_as_an_object_is_refused():
    with pytest.raises(FormError, match="nodes: given more than once"):
        answers(SITE, {"nodes": ["1", "2"]})
    with pytest.raises(FormError, match="partition: expected text"):
        answers(SITE, {"partition": {"name": "test"}})
    with pytest.raises(FormError, match="dask: expected text"):
        answers(SITE, {"dask": True})


def test_a_long_value_is_cut_in_the_message():
    with pytest.raises(FormError) as err:
        answers(SITE, {"partition": "x" * 5000})
    assert len(str(err.value)) < 200


def test_sbatch_words_are_quoted_as_sbatch_reads_them():
    assert hubform.sbatch_word("test") == "test"
    assert hubform.sbatch_word("a b") == '"a b"'
    assert hubform.sbatch_word('x"y\\z') == '"x\\"y\\\\z"'
    assert hubform.sbatch_word("a#b") == '"a#b"'


def test_the_form_shows_the_sites_fields_and_choices_escaped():
    site = {**SITE, "partitions": [{**SITE["partitions"][0], "description": "<b>Test</b>"}]}
    form = hubform.form_html(site)
    for field in hubform.FIELDS:
        assert f'name="{field}"' in form
    assert "&lt;b&gt;Test&lt;/b&gt;" in form and "<b>" not in form
    assert 'value="mpi"' in form and 'type="checkbox" name="dask" id="dask" value="on">' in form
    assert '<option value="proj1">proj1</option>' in form


def test_the_form_module_imports_the_standard_library_alone():
    """It is copied into the hub's configuration, where stackgen is not installed."""
    tree = ast.parse(open(hubform.__file__).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported and imported <= set(sys.stdlib_module_names), imported
