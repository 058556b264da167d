"""render: which package goes where, under which import name, as what text;
and the committed easyconfigs as EasyBuild's own parser and style check see them."""

from __future__ import annotations

import json
import zipfile

import pytest

from stackgen.common.templating import LINE_LIMIT, py_wrapped
from stackgen.site import lockfile
from stackgen.site.lockfile import Lock, LockedPackage
from stackgen.site.render import modulename, plan, render
from stackgen.site.spec import load_stack
from stackgen.site.wheels import top_level_names

STACK = """\
stack: {name: demo, version: "1"}
base: {module: cray-python/3.11}
modules:
  dask: {packages: [dask]}
  ipp: {packages: [ipyparallel]}
  lab:
    depends: [dask, ipp]
    packages: [jupyterlab]
    extensions: [lab-ext]
settings:
  lab: {overrides: {"@x/y:z": {theme: dark}}}
  dask: {distributed: {dashboard: {link: "{port}"}}}
"""


def pkg(name, requires=()):
    return LockedPackage(name=name, version="1.0", hashes=("sha256:" + "a" * 64,),
                         file=f"{name.replace('-', '_')}-1.0-py3-none-any.whl", sha256="a" * 64,
                         url="https://files.pythonhosted.org/x", requires=tuple(requires))


@pytest.fixture
def stack_and_lock(tmp_path):
    (tmp_path / "stack.yaml").write_text(STACK)
    stack = load_stack(tmp_path / "stack.yaml")
    packages = [pkg("dask", ["toolz", "tornado"]), pkg("toolz"), pkg("tornado"),
                pkg("ipyparallel", ["tornado", "traitlets"]), pkg("traitlets"),
                pkg("jupyterlab", ["traitlets", "toolz", "jinja2"]), pkg("jinja2"),
                pkg("lab-ext", ["jupyterlab"])]
    from stackgen.site.base import BaseIdentity
    from stackgen.site.lock import header_for

    class Base:
        identity = BaseIdentity("cray-python/3.11", "3.11.7", "cpython", "linux-x86_64", ())
    return stack, Lock(header_for(stack, Base(), "uv 0"), tuple(packages))


def test_each_package_in_exactly_one_module(stack_and_lock):
    stack, lock = stack_and_lock
    plans = {p.name: p for p in plan(stack, lock)}
    held = {p.name: name for name, mp in plans.items() for p in mp.packages}
    assert sorted(held) == sorted(p.name for p in lock.packages)
    assert held["tornado"] == "demo-common"      # dask and ipp both need it
    assert held["traitlets"] == "ipp"            # lab needs it too, but lab loads ipp
    assert held["toolz"] == "dask"               # lab needs it too, but lab loads dask
    assert held["jinja2"] == "lab"
    assert list(plans) == ["demo-common", "dask", "ipp", "lab"]
    assert plans["dask"].depends == (("demo-common", "1"),)
    assert plans["lab"].depends == (("dask", "1"), ("ipp", "1"))


def test_install_order_puts_dependencies_first(stack_and_lock):
    stack, lock = stack_and_lock
    lab = next(p for p in plan(stack, lock) if p.name == "lab")
    names = [p.name for p in lab.packages]
    assert names.index("jupyterlab") < names.index("lab-ext")


@pytest.mark.parametrize("name, tops, expected", [
    ("pyyaml", ("_yaml", "yaml"), "yaml"),
    ("pillow", ("PIL",), "PIL"),
    ("beautifulsoup4", ("bs4",), "bs4"),
    ("jupyter-server", ("jupyter_server",), "jupyter_server"),
    ("types-python-dateutil", (), None),
    ("matplotlib-inline", ("matplotlib_inline",), None),
    # nvidia-ml-py 13.615.71's top_level.txt: a stray example.py beside its package
    ("nvidia-ml-py", ("example", "pynvml"), "pynvml"),
    ("some-project", ("docs", "some_project_core", "tests"), "some_project_core"),
    ("only-tests", ("tests",), None),
])
def test_modulename_comes_from_the_wheel(name, tops, expected):
    assert modulename(pkg(name), tops)[0] == expected


def test_top_level_names_read_from_the_wheel(tmp_path):
    whl = tmp_path / "PyYAML-6.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("yaml/__init__.py", "")
        z.writestr("_yaml/__init__.py", "")
        z.writestr("PyYAML-6.0.dist-info/METADATA", "")
        z.writestr("PyYAML-6.0.data/data/share/x", "")
    assert top_level_names(whl) == ("_yaml", "yaml")
    single = tmp_path / "six-1.0-py3-none-any.whl"
    with zipfile.ZipFile(single, "w") as z:
        z.writestr("six.py", "")
        z.writestr("six-1.0.dist-info/top_level.txt", "six\n")
    assert top_level_names(single) == ("six",)


def test_a_stray_top_level_module_is_never_the_import_check(tmp_path):
    """nvidia-ml-py's wheel as PyPI serves it (13.615.71): example.py and
    pynvml.py at the top, both in top_level.txt; the check imports pynvml."""
    whl = tmp_path / "nvidia_ml_py-13.615.71-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for member in ["example.py", "pynvml.py", "nvidia_ml_py-13.615.71.dist-info/METADATA",
                       "nvidia_ml_py-13.615.71.dist-info/WHEEL",
                       "nvidia_ml_py-13.615.71.dist-info/RECORD"]:
            z.writestr(member, "")
        z.writestr("nvidia_ml_py-13.615.71.dist-info/top_level.txt", "example\npynvml\n")
    tops = top_level_names(whl)
    assert tops == ("example", "pynvml")
    assert modulename(pkg("nvidia-ml-py"), tops) == ("pynvml", "")


def test_render_is_deterministic_and_carries_the_site_settings(stack_and_lock):
    stack, lock = stack_and_lock
    tops = {p.name: (p.name.replace("-", "_"),) for p in lock.packages}
    first = render(stack, lock, tops)
    assert first == render(stack, lock, dict(reversed(list(tops.items()))))
    lab = first["lab-1.eb"]
    assert "share/jupyter/lab/settings/overrides.json" in lab
    assert "'extension_manager': 'readonly'" in lab
    assert 'setenv("JUPYTERLAB_DIR"' in lab
    assert "whatis(\"Jupyter extension: lab-ext\")" in lab
    assert "DASK_ROOT_CONFIG" in first["dask-1.eb"] and "etc/dask/" in first["dask-1.eb"]
    assert "('cray-python/3.11', EXTERNAL_MODULE)" in first["demo-common-1.eb"]


def test_long_file_names_are_wrapped_below_the_line_limit():
    name = "psutil-7.2.2-cp36-abi3-" + "manylinux_2_12_x86_64." * 5 + "whl"
    text = "        'source_tmpl': " + py_wrapped(name, 8) + ","
    assert all(len(line) <= LINE_LIMIT for line in text.splitlines())
    assert eval(text.split(": ", 1)[1].rstrip(",")) == name


def test_committed_easyconfigs_parse_and_pass_easybuilds_style_check(repo):
    from easybuild.framework.easyconfig.parser import EasyConfigParser
    from easybuild.framework.easyconfig.style import check_easyconfigs_style
    files = sorted((repo / "easyconfigs").glob("*.eb"))
    assert files
    current = lockfile.read(repo / "lockfiles" / "jupyter-2026.11.txt")
    listed = 0
    for path in files:
        config = EasyConfigParser(str(path)).get_config_dict()
        assert config["toolchain"] == {"name": "system", "version": "system"}
        assert config["dependencies"][0] == ("cray-python/3.11", "EXTERNAL_MODULE") or \
            config["dependencies"][0][0] == "cray-python/3.11"
        for name, version, options in config["exts_list"]:
            locked = current.package(name)
            assert locked.version == version and options["checksums"] == [locked.sha256]
            assert options["easyblock"] == "PythonPackage"
            listed += 1
    assert listed == len(current.packages)
    assert check_easyconfigs_style([str(f) for f in files]) == 0


def test_lab_module_describes_its_bundle_and_carries_the_user_command(stack_and_lock):
    stack, lock = stack_and_lock
    tops = {p.name: (p.name.replace("-", "_"),) for p in lock.packages}
    texts = render(stack, lock, tops)
    lab = texts["lab-1.eb"]
    assert 'local bundle = table.concat({\n    built_from("demo-common", "1"),\n' \
        '    built_from("dask", "1"),\n' in lab and f'local stack = "{stack.name}"' in lab
    assert "stackgen_user_command = " in lab
    assert 'prepend_path("PYTHONPATH", pathJoin(overlay, "lib", "python3.11", "site-packages"' in lab
    # the lab module is found by the name and version stack.yaml gives it
    assert 'setenv("STACKGEN_MODULE", "lab/1")' in lab
    # the overlay sits between the user's own folders and the central ones
    assert lab.index('prepend_path("JUPYTER_PATH", pathJoin(overlay') < \
        lab.index('prepend_path("JUPYTER_PATH", user_data)')
    assert "STACKGEN_BUNDLE" not in texts["dask-1.eb"]
    assert "stackgen_user_command" not in texts["dask-1.eb"]


def test_node_pin_is_the_one_stackgen_installs(repo):
    from stackgen.common.node import NODE_WHEEL
    assert NODE_WHEEL in (repo / "requirements.txt").read_text()


HOMEPAGES = """\
stack: {name: demo, version: "1", description: The centre's Jupyter stack}
base: {module: cray-python/3.11}
modules:
  dask: {packages: [dask]}
  ipp: {packages: [ipyparallel], homepage: "https://ipyparallel.readthedocs.io/"}
  lab:
    depends: [dask, ipp]
    packages: [jupyterlab]
    extensions: [lab-ext]
kernels:
  - {name: py-one, display_name: "Python (one thread)"}
"""


def homepages(text, stack_and_lock):
    stack, lock = stack_and_lock
    (stack.root / "stack.yaml").write_text(text)
    stack = load_stack(stack.root / "stack.yaml")
    out = render(stack, lock, {p.name: (p.name.replace("-", "_"),) for p in lock.packages})
    return {name: eval(ec.split("homepage = ", 1)[1].split("\n", 1)[0]) for name, ec in out.items()}, out


def test_homepage_is_the_modules_own_else_its_namesake_package_else_the_stacks(stack_and_lock):
    pages, _ = homepages(HOMEPAGES, stack_and_lock)
    assert pages["ipp-1.eb"] == "https://ipyparallel.readthedocs.io/"     # its own
    assert pages["dask-1.eb"] == "https://pypi.org/project/dask/"         # named after its package
    assert pages["lab-1.eb"] == "https://jupyter.org/"                     # stackgen's default
    assert pages["demo-common-1.eb"] == "https://jupyter.org/"
    pages, _ = homepages(HOMEPAGES.replace(
        'description: The', 'homepage: "https://docs.example.org/jupyter/", description: The'),
        stack_and_lock)
    assert pages["lab-1.eb"] == pages["demo-common-1.eb"] == "https://docs.example.org/jupyter/"
    assert pages["dask-1.eb"] == "https://pypi.org/project/dask/"


def usage_of(easyconfig: str) -> str:
    return easyconfig.split('usage = """\n', 1)[1].split('\n"""', 1)[0]


def test_module_help_says_what_the_module_gives_then_its_extensions(stack_and_lock):
    _, out = homepages(HOMEPAGES, stack_and_lock)
    lab = usage_of(out["lab-1.eb"])
    assert lab.startswith("Part of the demo stack 1: The centre's Jupyter stack.")
    order = ["module load lab/1 gives:", "jupyter lab", "stackgen user-overlay add",
             "stackgen parallel start ipyparallel", "stackgen-singleuser",
             "Kernels of the centre:", "py-one: Python (one thread)", "Jupyter extensions (1):",
             "lab-ext 1.0"]
    assert [lab.index(part) for part in order] == sorted(lab.index(part) for part in order)
    assert all(len(line) < 80 for line in lab.splitlines())
    dask = usage_of(out["dask-1.eb"])
    assert "python3 -c 'import dask'" in dask and "Loaded by lab/1." in dask
    common = usage_of(out["demo-common-1.eb"])
    assert "load those instead" in common and all(len(line) < 80 for line in common.splitlines())


def test_module_help_reads_as_easybuild_writes_it(stack_and_lock, tmp_path):
    """EasyBuild's parser takes the usage text as it is, and the stack's
    description appears in it; a kernel name that could end the literal early
    is still one string."""
    from easybuild.framework.easyconfig.parser import EasyConfigParser
    for name in ["Python (one thread)", 'say """hi\\']:
        _, out = homepages(HOMEPAGES.replace('"Python (one thread)"', json.dumps(name)), stack_and_lock)
        path = tmp_path / "lab-1.eb"
        path.write_text(out["lab-1.eb"])
        usage = EasyConfigParser(str(path)).get_config_dict()["usage"]
        assert f"py-one: {name}\n" in usage
        assert usage.strip().startswith("Part of the demo stack 1: The centre's Jupyter stack.")
