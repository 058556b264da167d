"""Kernel files: kernel.json and a launcher whose every value is quoted, so
names, paths and variables holding spaces, quotes or `$(...)` run nothing
else; the single-user launcher's handling of ~/.jupyterhub.env."""

from __future__ import annotations

import json
import subprocess

import pytest

from stackgen.common.errors import InputError
from stackgen.common.kernels import KernelSpec, kernel_json, launcher_text, parse_env, slug
from stackgen.common.templating import environment

NASTY = "it's \"my\" kernel $(touch {marker}) `touch {marker}` ; touch {marker}"


def stub_lmod(tmp_path):
    init = tmp_path / "lmod-init.sh"
    init.write_text('module() { echo "module $*" >> "$STUB_LOG"; }\n')
    return init


def test_launcher_quotes_every_value_and_runs_nothing_else(tmp_path):
    marker = tmp_path / "marker"
    venv = tmp_path / NASTY.format(marker=marker).replace("/", "_")
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\necho "python $*"; echo "VAR=$STACKGEN_VAR"\n')
    python.chmod(0o755)
    spec = KernelSpec(name=slug(NASTY.format(marker=marker)),
                      display_name=NASTY.format(marker=marker),
                      stack_module="jupyterlab/2026.11", modulepath=str(tmp_path / "mods $(x)"),
                      lmod_init=str(stub_lmod(tmp_path)),
                      modules=(f"netcdf/$(touch {marker})",),
                      env=(("STACKGEN_VAR", NASTY.format(marker=marker)),), venv=str(venv))
    script = tmp_path / "kernel.sh"
    script.write_text(launcher_text(spec))
    log = tmp_path / "module.log"
    env = {"PATH": "/usr/bin:/bin", "STUB_LOG": str(log)}
    done = subprocess.run(["bash", str(script), "/run/conn file.json"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["python -m ipykernel_launcher -f /run/conn file.json",
                                        f"VAR={NASTY.format(marker=marker)}"]
    assert log.read_text().splitlines() == [
        f"module use {tmp_path}/mods $(x)",
        f"module load jupyterlab/2026.11 netcdf/$(touch {marker})"]
    assert not marker.exists()
    data = json.loads(kernel_json(spec, "/k/folder"))
    assert data["argv"] == ["/k/folder/kernel.sh", "{connection_file}"]
    assert data["display_name"] == NASTY.format(marker=marker)


@pytest.mark.parametrize("name, expected", [
    ("Analysis", "analysis"), ("my kernel's $(x)", "my-kernel-s-x"), ("py3.11_gpu", "py3.11_gpu")])
def test_kernel_folder_names_are_safe(name, expected):
    assert slug(name) == expected


def test_bad_names_and_variables_are_refused():
    with pytest.raises(InputError):
        slug("$(!)")
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_env(["1X=2"])
    assert parse_env(["A=b=c", "B="]) == (("A", "b=c"), ("B", ""))


def singleuser(tmp_path, env_file_text, timeout=30):
    script = tmp_path / "stackgen-singleuser"
    script.write_text(environment().get_template("singleuser.sh.j2").render(
        modulepath="/m", stack_module="jupyterlab/1", lmod_init=str(stub_lmod(tmp_path)),
        env_timeout=timeout))
    (tmp_path / ".jupyterhub.env").write_text(env_file_text)
    # the module's `stackgen` beside the launcher: runs the server as the session
    session = tmp_path / "stackgen"
    session.write_text('#!/bin/sh\necho "stackgen $1 $2 $3" >> "$STUB_LOG"\nshift 3\nexec "$@"\n')
    session.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STUB_LOG": str(tmp_path / "log")}
    return subprocess.run(["bash", str(script), "--", "sh", "-c", "echo SEEN=$FROM_ENV_FILE"],
                          env=env, capture_output=True, text=True)


def test_singleuser_sources_the_env_file_then_starts_the_server(tmp_path):
    done = singleuser(tmp_path, "export FROM_ENV_FILE=yes\nfalse\nexport AFTER=1\n")
    assert done.returncode == 0
    assert done.stdout.strip() == "SEEN=yes"
    assert ".jupyterhub.env line 2 failed" in done.stderr
    assert (tmp_path / "log").read_text().splitlines() == ["module use /m",
                                                          "module load jupyterlab/1",
                                                          "stackgen parallel run --"]


def test_singleuser_reports_a_broken_env_file_and_starts_anyway(tmp_path):
    done = singleuser(tmp_path, "export FROM_ENV_FILE=yes\nif then fi (\n")
    assert done.returncode == 0
    assert done.stdout.strip() == "SEEN="
    assert "syntax error" in done.stderr and "line 2" in done.stderr


@pytest.mark.parametrize("env_file, reported", [
    ("export FROM_ENV_FILE=yes\nexit 1\nexport FROM_ENV_FILE=no\n", "ended with exit status 1"),
    ("set -e\nexport FROM_ENV_FILE=yes\nfalse\nexport FROM_ENV_FILE=no\n", "ended with exit status 1"),
    ("export FROM_ENV_FILE=yes\nsleep 600\nexport FROM_ENV_FILE=no\n", "did not end within 1 s"),
    ("export FROM_ENV_FILE=yes\nexec sleep 600\n", "did not end within 1 s"),
])
def test_an_env_file_that_exits_or_hangs_cannot_stop_the_server(tmp_path, env_file, reported):
    done = singleuser(tmp_path, env_file, timeout=1)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("SEEN=yes", "SEEN="), done.stdout
    assert reported in done.stderr
    if "exec" not in env_file:      # what it exported before it ended is kept
        assert done.stdout.strip() == "SEEN=yes"


def test_only_what_the_env_file_exports_is_taken_over(tmp_path):
    done = singleuser(tmp_path, "NOT_EXPORTED=1\nexport FROM_ENV_FILE=\"a b\nc\"\n"
                                 "cd /\nfoo() { :; }\n")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == "SEEN=a b c\n"     # (echo folds the newline it kept)


def test_lab_build_environment_is_one_for_centre_and_users(tmp_path):
    from stackgen.common import labbuild
    env = labbuild.node_environment("/opt/node/bin", tmp_path, "/usr/bin")
    assert env["PATH"] == "/opt/node/bin:/usr/bin"
    assert labbuild.node_environment("/opt/node/bin", tmp_path, env["PATH"])["PATH"] == env["PATH"]
    assert env["YARN_CACHE_FOLDER"] == str(tmp_path / "yarn-cache")
    assert env["YARN_ENABLE_GLOBAL_CACHE"] == "false" and env["NODE_USE_SYSTEM_CA"] == "1"
    kept = labbuild.node_environment(None, tmp_path, "/usr/bin", yarn_cache="/cache/yarn")
    assert kept["PATH"] == "/usr/bin" and kept["YARN_CACHE_FOLDER"] == "/cache/yarn"
    assert labbuild.install_argv("node", "/j/yarn.js", immutable=True) == \
        ["node", "/j/yarn.js", "install", "--immutable"]
    assert labbuild.build_argv("node", "/lab/staging") == \
        ["node", "node_modules/@jupyterlab/builder/lib/build-labextension.js",
         "--core-path", "/lab/staging", "."]
