"""StackgenBundle's pure parts: the one installer call and the reading of
the one-process import check (the easyblock itself runs in the e2e build)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from stackgen.site.easyblocks.checks import import_checks
from stackgen.site.easyblocks.install import IMPORT_CHECK, IMPORT_MARK, import_failures, installer_argv


def test_uv_installs_everything_in_one_call_without_resolving():
    argv = installer_argv("/base/bin/python", "/p/sw/m/1", ["/wh/a.whl", "/wh/b.whl"], uv="/v/uv")
    assert argv[:3] == ["/v/uv", "pip", "install"]
    for flag in ("--no-deps", "--no-index", "--offline", "--no-config", "--compile-bytecode",
                 "--link-mode=copy", "--no-cache"):
        assert flag in argv
    assert "--cache-dir" not in argv
    assert argv[argv.index("--python") + 1] == "/base/bin/python"
    assert argv[argv.index("--prefix") + 1] == "/p/sw/m/1"
    assert argv[-2:] == ["/wh/a.whl", "/wh/b.whl"]


def test_uv_keeps_its_unpacked_wheels_in_the_given_cache_and_copies_from_it():
    argv = installer_argv("/base/bin/python", "/p", ["/wh/a.whl"], uv="/v/uv", uv_cache="/c/uv")
    assert argv[argv.index("--cache-dir") + 1] == "/c/uv"
    assert "--no-cache" not in argv and "--link-mode=copy" in argv


def test_uv_leaves_the_bytecode_to_stackgen_s_cache_when_told(tmp_path):
    from stackgen.site.easyblocks.install import bytecode_argv
    argv = installer_argv("/base/bin/python", "/p", ["/wh/a.whl"], uv="/v/uv", compile_bytecode=False)
    assert "--compile-bytecode" not in argv
    argv = bytecode_argv("/base/bin/python", "/c/bytecode", "/staging/m/1", "/p/m/1")
    # run isolated by the install's interpreter: nothing of stackgen's on its path
    assert argv[:2] == ["/base/bin/python", "-I"] and argv[3:] == ["/c/bytecode", "/staging/m/1", "/p/m/1"]
    assert open(argv[2]).read().startswith('"""Bytecode for an install')


def test_pip_is_the_fallback_and_runs_in_the_base_interpreter():
    argv = installer_argv("/base/bin/python", "/p", ["/wh/a.whl"])
    assert argv[:4] == ["/base/bin/python", "-m", "pip", "install"]
    for flag in ("--no-deps", "--no-index", "--ignore-installed", "--no-cache-dir"):
        assert flag in argv
    assert argv[argv.index("--prefix") + 1] == "/p"
    assert argv[-1] == "/wh/a.whl"


def ext(name, modulename=None):
    options = {} if modulename is None else {"modulename": modulename}
    return SimpleNamespace(name=name, options=options)


def test_import_checks_follow_modulename():
    exts = [ext("pyyaml", "yaml"), ext("matplotlib-inline", False), ext("six"),
            ext("both", ["a", "b"])]
    assert import_checks(exts) == [("pyyaml", "yaml"), ("six", "six"), ("both", "a"),
                                   ("both", "b")]


@pytest.mark.parametrize("output, failed", [
    ("", ["not reached"] * 2),
    (f'{IMPORT_MARK}["a", "a", null]\nnoise printed on import\n{IMPORT_MARK}["b", "bb", null]\n', []),
    (f'{IMPORT_MARK}["a", "a", "ModuleNotFoundError: No module named \'x\'"]\n', ["No module", "not reached"]),
])
def test_import_failures_name_exactly_what_failed(output, failed):
    got = import_failures(output, [("a", "a"), ("b", "bb")])
    assert len(got) == len(failed)
    for (ext_name, module, reason), expected in zip(got, failed):
        assert expected in reason


def test_import_check_script_runs_every_import_in_one_process(tmp_path):
    (tmp_path / "good.py").write_text("print('a module that talks')\n")
    (tmp_path / "bad.py").write_text("raise RuntimeError('broken on import')\n")
    (tmp_path / "quits.py").write_text("raise SystemExit(3)\n")
    checks = [("good", "good"), ("bad", "bad"), ("quits", "quits"), ("missing", "nope")]
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], input=json.dumps(checks),
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    failures = {f[0]: f[2] for f in import_failures(result.stdout, checks)}
    assert set(failures) == {"bad", "quits", "missing"}
    assert "RuntimeError: broken on import" == failures["bad"]
    assert failures["missing"].startswith("ModuleNotFoundError")


def test_python_library_dirs_are_read_as_easybuild_reads_them():
    from stackgen.site.easyblocks.install import pylibdirs
    as_json = lambda *paths: "a warning first\n" + json.dumps(list(paths)) + "\n"  # noqa: E731
    assert pylibdirs(as_json("/tmp/lib/python3.11/site-packages",
                             "/tmp/lib/python3.11/site-packages")) == ["lib/python3.11/site-packages"]
    # Ubuntu's local/ is dropped; a lib64-only platform gets a lib/ entry too
    assert pylibdirs(as_json("/tmp/local/lib/python3.12/dist-packages",
                             "/tmp/local/lib/python3.12/dist-packages")) == \
        ["lib/python3.12/dist-packages"]
    assert pylibdirs(as_json("/tmp/lib64/python3.9/site-packages",
                             "/tmp/lib64/python3.9/site-packages")) == \
        ["lib64/python3.9/site-packages", "lib/python3.9/site-packages"]
    with pytest.raises(Exception, match="not under the prefix"):
        pylibdirs(as_json("/usr/lib/python3/dist-packages"))


def test_the_library_dirs_probe_runs_in_one_interpreter_start():
    from stackgen.site.easyblocks.install import PYLIBDIRS, pylibdirs
    out = subprocess.run([sys.executable, "-c", PYLIBDIRS], capture_output=True, text=True,
                         check=True).stdout
    version = "%d.%d" % sys.version_info[:2]
    assert f"lib/python{version}/site-packages" in pylibdirs(out)


def test_a_run_waits_for_the_marks_of_the_modules_it_loads(tmp_path):
    import threading

    from stackgen.site.easyblocks.contract import BuildStatus
    (tmp_path / "common-1.built").touch()
    later = threading.Timer(0.1, (tmp_path / "dask-1.built").touch)
    later.start()
    BuildStatus(tmp_path).wait_for(["common/1", "dask/1"], alive=lambda: True, poll=0.01)
    assert (tmp_path / "dask-1.built").exists()


def test_a_run_stops_waiting_when_a_module_failed_or_its_stackgen_is_gone(tmp_path):
    from stackgen.site.easyblocks.contract import BuildStatus
    (tmp_path / "dask-1.failed").touch()
    with pytest.raises(Exception, match="not built: dask/1, which this module loads, failed"):
        BuildStatus(tmp_path).wait_for(["dask/1"], alive=lambda: True, poll=0.01)
    with pytest.raises(Exception, match="not built: ipyparallel/1.*build that started this run"):
        BuildStatus(tmp_path).wait_for(["ipyparallel/1"], alive=lambda: False, poll=0.01)
    with pytest.raises(Exception, match="has ended"):
        BuildStatus(tmp_path / "gone").wait_for(["ipyparallel/1"], alive=lambda: True, poll=0.01)


def test_a_long_source_extension_step_says_it_is_alive_on_the_console_and_in_the_log(
        monkeypatch, capsys, caplog):
    """jlpm and the node build run for a minute when caches are cold: the step
    is named with its extension, then every HEARTBEAT seconds a line says
    which extension is still being worked on, printed and logged."""
    import logging
    import time

    from stackgen.site.easyblocks import sourceext, sources

    monkeypatch.setattr(sources, "HEARTBEAT", 0.05)
    monkeypatch.setattr(sourceext, "run_shell_cmd", lambda argv, **kw: time.sleep(0.3) or "done")
    block = sourceext.SourceExtensions()
    block.log = logging.getLogger("test-easyblock")
    with caplog.at_level(logging.INFO, logger="test-easyblock"):
        assert block.run_saying("jupyterlab-tour@4.0.1: building it", "jupyterlab-tour@4.0.1: "
                                "still building it", ["node", "build.js"]) == "done"
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "== jupyterlab-tour@4.0.1: building it"
    still = [line for line in printed[1:] if line.startswith("== jupyterlab-tour@4.0.1: still building it (")]
    assert len(still) >= 3 and len(still) == len(printed) - 1
    logged = [r.getMessage() for r in caplog.records]
    assert logged[0] == "jupyterlab-tour@4.0.1: building it" and len(logged) == len(printed)


def test_module_files_find_the_base_where_the_build_found_it_unless_one_is_loaded():
    from stackgen.site.easyblocks.payload import base_modulepath_lua
    assert base_modulepath_lua("cray-python/3.11", "") == ""       # on the system's modulepath
    text = base_modulepath_lua("cray-python/3.11", "/c1/site_modulefiles:/c1/more")
    assert 'if mode() ~= "load" or not isloaded("cray-python") then' in text
    assert text.index('"/c1/site_modulefiles"') > text.index('"/c1/more"') > 0   # prepended: first wins
    assert text.count("prepend_path(\"MODULEPATH\"") == 2 and text.rstrip().endswith("end")


def test_the_lab_modules_python_runs_the_loaded_bases_interpreter(tmp_path):
    """bin/python3.X of the module's venv runs STACKGEN_LOADED_BASE_PYTHON as the venv
    (argv[0] kept), names no base of its own, and refuses to run without one."""
    from stackgen.site.easyblocks.payload import jupyter_env_files
    files = {os.path.basename(p): (p, text, mode)
             for p, text, mode in jupyter_env_files(str(tmp_path / "env"), str(tmp_path / "site"),
                                                    "3.11", "jupyterlab/1")}
    path, text, mode = files["python3.11"]
    assert path == str(tmp_path / "env" / "bin" / "python3.11") and mode == 0o755
    script = tmp_path / "python3.11"
    script.write_text(text)
    script.chmod(0o755)
    base = tmp_path / "base" / "bin" / "python3"
    base.parent.mkdir(parents=True)
    base.symlink_to(sys.executable)
    ran = subprocess.run([str(script), "-c", "import sys; print(sys.executable, sys.argv[1:])", "x"],
                         env={"STACKGEN_LOADED_BASE_PYTHON": str(base)}, capture_output=True, text=True)
    assert ran.stdout.strip() == f"{script} ['x']", ran      # the venv's python, as Python sees it
    for env in ({}, {"STACKGEN_LOADED_BASE_PYTHON": str(script)}):       # none, or itself
        ran = subprocess.run([str(script)], env=env, capture_output=True, text=True)
        assert ran.returncode == 127 and "module load jupyterlab/1" in ran.stderr
    assert files["_stackgen_base.pth"][1] == "import _stackgen_base\n"
    assert "/" not in text.replace("#!/bin/bash", "").split("exec", 1)[1].split('"')[1]
