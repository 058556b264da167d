"""The reference stack built for real (EasyBuild, Lmod), then used as a
scientist uses it: `module load jupyterlab` in a login shell."""

from __future__ import annotations

import importlib.util
import json
import marshal
import re
import shlex
from pathlib import Path

import pytest

from conftest import run_stackgen
from e2e import KERNEL_CLIENT, LabServer, ensure_user, login_shell, page_config, with_lab, writable_by_others

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.lmod]

# stack.yaml's extensions: Python package -> (lab extension, server extension)
EXTENSIONS = {
    "dask-labextension": ("dask-labextension", "dask_labextension"),
    "jupyterlab-git": ("@jupyterlab/git", "jupyterlab_git"),
    "jupyter-resource-usage": ("@jupyter-server/resource-usage", "jupyter_resource_usage"),
    "jupyter-server-proxy": ("@jupyterhub/jupyter-server-proxy", "jupyter_server_proxy"),
}
# stack.yaml's source extensions: npm package -> a settings plugin it brings
SOURCE_EXTENSIONS = {"jupyterlab-tour": "jupyterlab-tour:user-tours"}


def lab(built, script, **kw):
    return login_shell(with_lab(built.prefix, script), home=kw.pop("home", built.home), **kw)


def test_build_summary_and_layout(built_stack):
    summary = built_stack.summary
    assert summary["modules"][-1] == "jupyterlab/2026.11"
    assert set(summary["built"]) == set(summary["modules"])
    for module in summary["modules"]:
        name, version = module.split("/")
        assert (built_stack.prefix / "modules" / "all" / name / f"{version}.lua").exists()
        assert (built_stack.prefix / "software" / name / version / "easybuild").is_dir()


def test_each_bundle_is_one_installer_call_with_one_import_check(built_stack):
    """StackgenBundle: no per-extension pip or import process, and what
    EasyBuild gives is still there (extension list, pip check, log)."""
    for module in built_stack.summary["modules"]:
        name, version = module.split("/")
        install = built_stack.prefix / "software" / name / version
        (log,) = (install / "easybuild").glob(f"easybuild-{name}-{version}-*.log")
        text = log.read_text()
        exts = re.findall(r"^    \('([^']+)', '([^']+)', \{$",
                          (install / "easybuild" / f"{name}-{version}.eb").read_text(), re.M)
        # started in the ready step, niced when it waits for modules being built;
        # the bytecode compiled or taken from stackgen's cache, named by the
        # install's final path (not the staging folder EasyBuild installs in)
        assert re.search(rf"Installing {len(exts)} extensions in one call, from the ready step "
                         rf"on: (nice -n \d+ )?\S*uv pip install .* && (nice -n \d+ )?\S+ -I "
                         rf"\S+/bytecode.py ", text), name
        files, taken, compiled, failed = map(int, re.search(
            r"bytecode of (\d+) files: (\d+) from the cache, (\d+) compiled, (\d+) not "
            r"compilable", text).groups())
        assert files == taken + compiled + failed > 0, name
        (site,) = (install / "lib").glob("python3*/site-packages")
        source = sorted(site.glob("*/__init__.py"))[0]
        pyc = Path(importlib.util.cache_from_source(str(source))).read_bytes()
        assert marshal.loads(pyc[16:]).co_filename == str(source), name
        assert int.from_bytes(pyc[8:12], "little") == int(source.stat().st_mtime) & 0xFFFFFFFF
        if name != "jupyter-common":     # each loads a module built beside it
            assert re.search(r"Waited \d+\.\d s for the modules this one loads", text), name
        assert "-m pip install --prefix=/" not in text           # PythonPackage's own call
        assert re.search(r"Import check of \d+ modules: 0 failed", text)
        assert "`" in text and "-m pip check` passed successfully" in text
        # the fake module is loaded once, for the sanity check: not again for
        # Bundle's components (none) nor for an EasyBuild devel module (none)
        assert text.count("Loading fake module") == 1, name
        assert not list((install / "easybuild").glob("*-easybuild-devel")), name
        # kept for reproduction: the easyconfig as built (copied, not dumped again)
        # and the easyblocks it used
        easyconfig = (install / "easybuild" / f"{name}-{version}.eb").read_bytes()
        assert (install / "easybuild" / "reprod" / f"{name}-{version}.eb").read_bytes() == easyconfig
        assert (install / "easybuild" / "reprod" / "easyblocks" / "stackgenbundle.py").is_file()
        lua = (built_stack.prefix / "modules" / "all" / name / f"{version}.lua").read_text()
        listed = re.search(r'setenv\("EBEXTSLIST\w+", "([^"]*)"\)', lua).group(1).split(",")
        assert sorted(listed) == sorted(f"{n}-{v}" for n, v in exts)
        shown = re.search(r'extensions\("([^"]*)"\)', lua).group(1).split(",")
        assert sorted(shown) == sorted(f"{n}/{v}" for n, v in exts)
        assert not (install / ".lock").exists()


def test_module_load_gives_the_whole_lab(built_stack):
    result = lab(built_stack, 'python -c "import jupyterlab, dask.distributed, ipyparallel; '
                              'print(jupyterlab.__version__)"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("4.6.")


def test_every_extension_is_enabled(built_stack):
    listed = lab(built_stack, "jupyter labextension list 2>&1")
    assert listed.returncode == 0, listed.stdout
    for package, (labext, _) in EXTENSIONS.items():
        assert re.search(rf"{re.escape(labext)} v\S+ enabled\s+OK", listed.stdout), \
            f"{package}: {labext} not enabled OK:\n{listed.stdout}"
    # built as prebuilt extensions into the lab module's share/jupyter/labextensions
    module_dir = built_stack.prefix / "software" / "jupyterlab" / "2026.11" / "share" / "jupyter" / "labextensions"
    section = listed.stdout.split(f"{module_dir}\n", 1)[1].split("\n\n", 1)[0]
    for npm_name in SOURCE_EXTENSIONS:
        assert re.search(rf"{re.escape(npm_name)} v\S+ \S*enabled\S*\s+\S*OK", section), listed.stdout
    assert " X" not in listed.stdout
    servers = lab(built_stack, "jupyter server extension list 2>&1")
    for package, (_, server) in EXTENSIONS.items():
        assert re.search(rf"{server} enabled", servers.stdout), f"{server}:\n{servers.stdout}"
    assert "jupyterlab enabled" in servers.stdout


def test_no_install_holds_node_modules_or_a_rebuilt_lab_bundle(built_stack):
    """Source extensions are built as prebuilt ones: JupyterLab's core bundle
    (share/jupyter/lab/static) is its wheel's, file for file."""
    software = built_stack.prefix / "software"
    assert not list(software.rglob("node_modules"))
    (lab,) = software.glob("jupyterlab/*")
    (record,) = lab.glob("lib/python3*/site-packages/jupyterlab-*.dist-info/RECORD")
    site = record.parent.parent
    recorded = {(site / row.split(",")[0]).resolve() for row in record.read_text().splitlines()}
    static = [p.resolve() for p in (lab / "share" / "jupyter" / "lab" / "static").rglob("*") if p.is_file()]
    assert static and not [p for p in static if p not in recorded]


def test_module_whatis_lists_the_extensions(built_stack):
    result = login_shell(f"module use {built_stack.prefix}/modules/all && "
                         "module whatis jupyterlab 2>&1", home=built_stack.home)
    for package in [*EXTENSIONS, *SOURCE_EXTENSIONS]:
        assert package in result.stdout, result.stdout


def test_module_help_says_what_the_module_gives_first(built_stack):
    """The real `module help`: the stack, what the module gives and how to use
    it, the extensions, and only then the packages; each module its own homepage."""
    result = login_shell(f"module use {built_stack.prefix}/modules/all && "
                         "module help jupyterlab dask jupyter-common 2>&1", home=built_stack.home)
    text = result.stdout
    lab = text[text.index('"jupyterlab/'):text.index('"dask/')]
    order = ["JupyterLab with the centre's extensions", "Part of the jupyter stack",
             "stackgen user-overlay add", "stackgen parallel start dask", "stackgen-singleuser",
             "Kernels of the centre:", "Jupyter extensions (5):", "jupyterlab-tour 4.0.1",
             "Homepage: https://jupyterlab.readthedocs.io/", "Python packages ("]
    assert [lab.index(part) for part in order] == sorted(lab.index(part) for part in order), lab
    assert "Included extensions" not in text
    packages = lab[lab.index("Python packages ("):]
    assert not any(line.rstrip().endswith("-") for line in packages.splitlines()), packages
    assert "Homepage: https://docs.dask.org/" in text
    assert "Homepage: https://jupyter.org/" in text          # jupyter-common: the stack's


def test_installed_tree_is_not_writable_by_group_or_others(built_stack):
    assert writable_by_others(built_stack.prefix / "software") == []
    assert writable_by_others(built_stack.prefix / "modules") == []


def test_installs_copy_the_files_uv_unpacked_once_into_its_cache(built_stack, cache_dir):
    """uv unpacks each wheel once into stackgen's cache and copies from there:
    no installed file shares its inode with the builder's cache."""
    (module_py,) = (built_stack.prefix / "software" / "dask").glob(
        "*/lib/python3*/site-packages/dask/__init__.py")
    cached = list((cache_dir / "eb" / "uv-cache").rglob("dask/__init__.py"))
    assert cached
    assert module_py.stat().st_nlink == 1
    assert module_py.read_bytes() in {path.read_bytes() for path in cached}


def test_rebuild_with_nothing_changed_builds_nothing(built_stack):
    result = run_stackgen("build", "--prefix", str(built_stack.prefix), "--json",
                          cwd=built_stack.spec)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["built"] == []
    check = run_stackgen("render", "--check", cwd=built_stack.spec)
    assert check.returncode == 0, check.stderr


def test_a_user_overrides_the_site_for_themselves(built_stack):
    """As an unprivileged user: disabling a central extension and changing a
    site default take effect for that user only."""
    user = ensure_user()
    probe = login_shell(with_lab(built_stack.prefix, "touch $EBROOTJUPYTERLAB/x 2>&1; "
                                 "jupyter labextension disable dask-labextension --level=user && "
                                 # jupyter_server's `disable --user` only toggles what the
                                 # user's config already lists: a user writes the file
                                 "mkdir -p ~/.jupyter/jupyter_server_config.d && echo "
                                 "'{\"ServerApp\": {\"jpserver_extensions\": "
                                 "{\"jupyterlab_git\": false}}}' > "
                                 "~/.jupyter/jupyter_server_config.d/jupyterlab_git.json && "
                                 "jupyter labextension list 2>&1; jupyter server extension list 2>&1"),
                        user=user.pw_name)
    assert "Permission denied" in probe.stdout
    assert re.search(r"dask-labextension v\S+ disabled", probe.stdout), probe.stdout
    assert re.search(r"jupyterlab_git disabled", probe.stdout), probe.stdout
    mine = lab(built_stack, "jupyter labextension list 2>&1; jupyter server extension list 2>&1")
    assert re.search(r"dask-labextension v\S+ enabled", mine.stdout)
    assert re.search(r"jupyterlab_git enabled", mine.stdout)
    reset = f"rm -rf ~{user.pw_name}/.jupyter ~{user.pw_name}/.local/share/jupyter"
    login_shell(reset, home=built_stack.home)


def test_jupyter_lab_serves_the_stack(built_stack, tmp_path):
    home = built_stack.root / "home-lab"
    home.mkdir(exist_ok=True)
    settings = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "true"}')
    server = LabServer(built_stack.prefix, home)
    try:
        server.wait()
        status, html = server.get("/lab")
        assert status == 200
        config = page_config(html)
        federated = {ext["name"] for ext in config["federated_extensions"]}
        for labext, _ in EXTENSIONS.values():
            assert labext in federated
        for plugin in SOURCE_EXTENSIONS.values():
            status, body = server.get(f"/lab/api/settings/{plugin}")
            assert status == 200 and json.loads(body)["id"] == plugin
        status, specs = server.get("/api/kernelspecs")
        assert "python3" in json.loads(specs)["kernelspecs"]
        status, notif = server.get("/lab/api/settings/@jupyterlab/apputils-extension:notification")
        notif = json.loads(notif)
        assert notif["schema"]["properties"]["fetchNews"]["default"] == "false"   # site default
        assert json.loads(notif["raw"])["fetchNews"] == "true"                   # the user's wins
        code = "import dask, ipyparallel, dask.distributed; print('ok', dask.__version__)"
        script = with_lab(built_stack.prefix, shlex.join(
            ["python", "-c", KERNEL_CLIENT, server.url, server.token, code]))
        ran = login_shell(script, home=home, timeout=300)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("ok 2026."), ran.stdout
    finally:
        server.stop()
    assert server.proc.returncode is not None
    assert "Extension Manager is 'readonly'" in (home / "lab.log").read_text()   # site setting
