"""Unit tests of the lock's pure parts: the file model, resolver output,
conflict explanations, the dependency graph and staleness."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from stackgen.common.errors import CommandError, InputError
from stackgen.common.run import clean_env, run
from stackgen.site import lockfile
from stackgen.site.base import BaseIdentity
from stackgen.site.check import stale_reasons
from stackgen.site.lmod import apply_python
from stackgen.site.lock import dependency_graph, header_for
from stackgen.site.npm import LockedNpm, NpmTarball, yarn_lock_packages
from stackgen.site.resolvers import explain_conflict, parse_resolved
from stackgen.site.spec import load_stack

STACK = """\
stack: {name: demo, version: "1"}
base: {module: cray-python/3.11}
modules:
  core:
    packages: ["dask[distributed]==2026.*"]
  lab:
    depends: [core]
    packages: [jupyterlab==4.6.*]
"""

IDENT = BaseIdentity(module="cray-python/3.11", python="3.11.7", implementation="cpython",
                     platform="linux-x86_64", provides=(("numpy", "2.4.6"), ("pip", "26.0.1")))


class FakeBase:
    identity = IDENT


@pytest.fixture
def stack(tmp_path):
    (tmp_path / "stack.yaml").write_text(STACK)
    return load_stack(tmp_path / "stack.yaml")


def make_lock(stack, packages):
    return lockfile.Lock(header=header_for(stack, FakeBase(), "pip-tools 7.6.2"),
                         packages=tuple(packages))


PKG = lockfile.LockedPackage(
    name="dask", version="2026.8.0", hashes=("sha256:" + "b" * 64, "sha256:" + "a" * 64),
    file="dask-2026.8.0-py3-none-any.whl", sha256="a" * 64,
    url="https://files.pythonhosted.org/packages/aa/dask-2026.8.0-py3-none-any.whl",
    requires=("toolz", "cloudpickle"))


def test_render_parse_round_trip(stack):
    lock = make_lock(stack, [PKG])
    text = lock.render()
    again = lockfile.parse(text)
    assert again.render() == text
    assert again.header == lock.header
    assert again.package("dask").file == PKG.file
    assert "--hash=sha256:" + "a" * 64 + " \\" in text   # sorted hashes, continuation


NPM = LockedNpm(module="lab", name="@acme/lab-theme", version="1.2.3",
                integrity="sha512-" + "A" * 86 + "==",
                url="https://registry.npmjs.org/@acme/lab-theme/-/lab-theme-1.2.3.tgz")


def test_npm_lines_round_trip(stack):
    lock = lockfile.Lock(header=make_lock(stack, [PKG]).header, packages=(PKG,), npm=(NPM,))
    text = lock.render()
    assert "# npm: lab: @acme/lab-theme@1.2.3 sha512-" in text
    again = lockfile.parse(text)
    assert again.npm == (NPM,) and again.render() == text
    assert NPM.file == "acme-lab-theme-1.2.3.tgz"


TREE = (NpmTarball("@jupyterlab/builder", "4.5.11", "sha512-" + "B" * 86 + "==",
                   "https://registry.npmjs.org/@jupyterlab/builder/-/builder-4.5.11.tgz"),
        NpmTarball("ajv", "8.17.1", "sha512-" + "C" * 86 + "==",
                   "https://registry.npmjs.org/ajv/-/ajv-8.17.1.tgz"))
YARN_LOCK = '__metadata:\n  version: 6\n\n"ajv@npm:^8.12.0":\n  version: 8.17.1\n'


def test_the_npm_tree_and_yarn_lock_round_trip(stack, tmp_path):
    """The npm section: each tarball of the build's tree in the header, the
    yarn.lock beside the lock, both read back as written."""
    ext = replace(NPM, tree=TREE, yarn_lock=YARN_LOCK)
    lock = lockfile.Lock(header=make_lock(stack, [PKG]).header, packages=(PKG,), npm=(ext,))
    path = tmp_path / "demo-1.txt"
    lock.write(path)
    text = path.read_text()
    assert "# npm-tree: @acme/lab-theme@1.2.3: ajv@8.17.1 sha512-" in text
    assert f"# npm-yarn-lock: @acme/lab-theme@1.2.3: acme-lab-theme-1.2.3.yarn.lock " \
           f"{ext.yarn_lock_sha256}" in text
    assert "# npm-digest: sha256:" in text and " 3 tarballs" in text
    assert (tmp_path / "demo-1.npm" / "acme-lab-theme-1.2.3.yarn.lock").read_text() == YARN_LOCK
    again = lockfile.read(path)
    assert again.npm == (ext,) and again.render() == text


@pytest.mark.parametrize("tamper, named", [
    (lambda p, y: p.write_text(p.read_text().replace("ajv@8.17.1 sha512-C", "ajv@8.17.1 sha512-D")),
     "the npm section differs from the digest"),
    (lambda p, y: p.write_text(re.sub(r"^# npm-tree: .*ajv.*\n", "", p.read_text(), flags=re.M)),
     "the npm section differs from the digest"),
    (lambda p, y: y.write_text(YARN_LOCK + "# edited\n"), "differs from its sha256"),
    (lambda p, y: y.unlink(), "is missing"),
], ids=["edited-integrity", "deleted-tarball", "edited-yarn-lock", "deleted-yarn-lock"])
def test_a_changed_npm_section_is_refused(stack, tmp_path, tamper, named):
    ext = replace(NPM, tree=TREE, yarn_lock=YARN_LOCK)
    path = tmp_path / "demo-1.txt"
    lockfile.Lock(header=make_lock(stack, [PKG]).header, packages=(PKG,), npm=(ext,)).write(path)
    tamper(path, tmp_path / "demo-1.npm" / ext.yarn_lock_file)
    with pytest.raises(lockfile.LockIntegrityError, match=named):
        lockfile.read(path)


def test_yarn_lock_packages_reads_npm_resolutions_and_refuses_others():
    text = ('"a@npm:^1":\n  version: 1.0.0\n  resolution: "a@npm:1.0.0"\n\n'
            '"@s/b@npm:~2":\n  version: 2.1.0\n  resolution: "@s/b@npm:2.1.0"\n\n'
            '"x@workspace:.":\n  resolution: "x@workspace:."\n\n'
            '"resolve@patch:resolve@npm%3A^1#~builtin<compat/resolve>":\n'
            '  resolution: "resolve@patch:resolve@npm%3A1.22.14#~builtin<compat/resolve>::v=1"\n')
    assert yarn_lock_packages(text) == [("@s/b", "2.1.0"), ("a", "1.0.0")]
    with pytest.raises(ValueError, match="not an npm registry package"):
        yarn_lock_packages('"g@git":\n  resolution: "g@https://github.com/x/g.git#commit=abc"\n')


def test_render_is_sorted_and_stable(stack):
    other = lockfile.LockedPackage(name="anyio", version="4.0", hashes=("sha256:" + "c" * 64,),
                                   file="anyio-4.0-py3-none-any.whl", sha256="c" * 64, url="u")
    a = make_lock(stack, [PKG, other]).render()
    b = make_lock(stack, [other, PKG]).render()
    assert a == b
    assert a.index("anyio==4.0") < a.index("dask==2026.8.0")


@pytest.mark.parametrize("mangle, message", [
    (lambda t: t.replace(f"# stackgen-lock-format: {lockfile.LOCK_FORMAT}",
                         "# stackgen-lock-format: 9"), "format 9"),
    (lambda t: t.replace(f"# stackgen-lock-format: {lockfile.LOCK_FORMAT}\n", ""),
     "not a stackgen lock"),
    (lambda t: t.replace("# spec-digest", "# spec-dagest"), "spec-digest"),
    (lambda t: t.replace("    # file:", "    # fil:"), "unexpected line"),
])
def test_broken_locks_are_refused_with_the_line(stack, mangle, message):
    text = mangle(make_lock(stack, [PKG]).render())
    with pytest.raises(InputError) as err:
        lockfile.parse(text, "lockfiles/demo-1.txt")
    assert message in err.value.message
    assert "lockfiles/demo-1.txt" in err.value.message


PIP_TOOLS_OUT = """\
anyio==4.6.2 \\
    --hash=sha256:11 \\
    --hash=sha256:22
    # via httpx
Dask[distributed]==2026.8.0 \\
    --hash=sha256:33
"""


def test_parse_resolver_output():
    pins = parse_resolved(PIP_TOOLS_OUT)
    assert [(p.name, p.version, p.hashes) for p in pins] == [
        ("anyio", "4.6.2", ("sha256:11", "sha256:22")), ("dask", "2026.8.0", ("sha256:33",))]


def test_conflict_from_pip_tools_names_both_sides():
    out = ("ERROR: Cannot install distributed==2023.1.0 and dask==2026.* because these package "
           "versions have conflicting dependencies.\nTraceback...\nResolutionImpossible: "
           "[RequirementInformation(requirement=SpecifierRequirement('dask==2026.*'), parent=None), "
           "RequirementInformation(requirement=SpecifierRequirement('dask==2023.1.0'), "
           "parent=LinkCandidate('https://files.example/distributed-2023.1.0-py3-none-any.whl "
           "(from x)'))]")
    err = explain_conflict("pip-tools", out)
    assert err.exit_code == 2
    assert "stack.yaml asks for dask==2026.*" in err.message
    assert "distributed 2023.1.0 requires dask==2023.1.0" in err.message


def test_conflict_from_uv():
    out = ("  × No solution found when resolving dependencies:\n"
           "  ╰─▶ Because distributed==2023.1.0 depends on dask==2023.1.0 and you require "
           "dask==2026.*, we can conclude that your requirements are unsatisfiable.\n")
    err = explain_conflict("uv", out)
    assert "distributed==2023.1.0 depends on dask==2023.1.0" in err.message


def test_dependency_graph_follows_extras_and_markers(stack):
    markers = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux",
               "os_name": "posix", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython", "python_full_version": "3.11.7",
               "implementation_version": "3.11.7", "platform_release": "", "platform_version": ""}
    chosen = {
        "dask": {"requires_dist": ["toolz>=0.10", "distributed==2026.8.0; extra == 'distributed'",
                                  "pywin32; sys_platform == 'win32'"], "markers": markers},
        "distributed": {"requires_dist": ["toolz", "tornado>=6"], "markers": markers},
        "toolz": {"requires_dist": [], "markers": markers},
        "tornado": {"requires_dist": [], "markers": markers},
        "jupyterlab": {"requires_dist": ["tornado", "numpy"], "markers": markers},
    }
    graph = dependency_graph(stack, chosen, set(chosen))
    assert graph["dask"] == ("distributed", "toolz")
    assert graph["jupyterlab"] == ("tornado",)          # numpy is the base's, not locked


def test_staleness_names_spec_and_base_changes(stack, tmp_path):
    lock = make_lock(stack, [PKG])
    assert stale_reasons(stack, IDENT, lock) == []
    (tmp_path / "stack.yaml").write_text(STACK.replace("[jupyterlab==4.6.*]",
                                                       "[jupyterlab==4.6.*, jupyterlab-git]"))
    changed = load_stack(tmp_path / "stack.yaml")
    assert stale_reasons(changed, IDENT, lock) == ["added to module lab: jupyterlab-git"]
    newer = BaseIdentity(module=IDENT.module, python="3.11.9", implementation="cpython",
                         platform="linux-x86_64", provides=(("numpy", "2.5.0"), ("scipy", "1.17.1")))
    reasons = stale_reasons(stack, newer, lock)
    assert "base Python changed: cpython 3.11.7 linux-x86_64 -> cpython 3.11.9 linux-x86_64" in reasons
    assert "base numpy changed: 2.4.6 -> 2.5.0" in reasons
    assert "base now provides scipy 1.17.1" in reasons
    assert "base no longer provides pip 26.0.1" in reasons
    assert stale_reasons(stack, IDENT, None)[0].startswith("no lock yet")


def test_staleness_names_a_source_extension(stack, tmp_path):
    lock = make_lock(stack, [PKG])
    (tmp_path / "stack.yaml").write_text(STACK.replace(
        "    packages: [jupyterlab==4.6.*]",
        "    packages: [jupyterlab==4.6.*]\n    source_extensions: ['@acme/lab-theme@1.2.3']"))
    changed = load_stack(tmp_path / "stack.yaml")
    assert stale_reasons(changed, IDENT, lock) == [
        "source extension added to module lab: @acme/lab-theme@1.2.3"]
    current = lockfile.Lock(header=header_for(changed, FakeBase(), "uv 0.13"), packages=(PKG,),
                            npm=(NPM,))
    assert stale_reasons(changed, IDENT, current) == []


def test_settings_do_not_make_the_lock_stale(stack, tmp_path):
    lock = make_lock(stack, [PKG])
    (tmp_path / "stack.yaml").write_text(STACK + "settings: {lab: {extension_manager: pypi}}\n")
    assert stale_reasons(load_stack(tmp_path / "stack.yaml"), IDENT, lock) == []


def test_lmod_python_output_is_applied():
    out = ('import os\nos.environ["PATH"] = "/x/bin:/usr/bin";\n'
           'os.environ["A"] = "with \\"quote\\"";\ndel os.environ["GONE"];\n_mlstatus = True\n')
    env = apply_python(out, {"PATH": "/usr/bin", "GONE": "1", "KEEP": "k"})
    assert env == {"PATH": "/x/bin:/usr/bin", "A": 'with "quote"', "KEEP": "k"}


def test_clean_env_drops_ambient_pip_and_uv_configuration():
    env = clean_env({"PIP_FIND_LINKS": "/opt/wheels", "PIP_EXTRA_INDEX_URL": "file:///x",
                     "UV_INDEX_URL": "y", "PIP_CONSTRAINT": "c.txt", "HOME": "/h"})
    assert "PIP_FIND_LINKS" not in env and "UV_INDEX_URL" not in env
    assert "PIP_CONSTRAINT" not in env and "PIP_EXTRA_INDEX_URL" not in env
    assert env["PIP_CONFIG_FILE"] and env["UV_NO_CONFIG"] == "1" and env["HOME"] == "/h"


def test_run_funnel_raises_with_the_tail(tmp_path):
    with pytest.raises(CommandError) as err:
        run(["sh", "-c", "for i in $(seq 1 40); do echo line$i; done; exit 3"],
            describe="demo step", logfile=tmp_path / "log")
    text = err.value.render()
    assert "demo step failed (exit 3)" in text
    assert "line40" in text and "line1\n" not in text
    assert "line1" in (tmp_path / "log").read_text()


@pytest.mark.parametrize("output, names", [
    ("  × No solution found when resolving dependencies:\n  ╰─▶ Because no-such-pkg was not found in "
     "the package\n      │ registry and you require no-such-pkg==1.0, we can conclude that your "
     "requirements are unsatisfiable.", ["no-such-pkg"]),
    ("ERROR: Could not find a version that satisfies the requirement No_Such.Pkg==1.0 (from versions: "
     "none)\nERROR: No matching distribution found for No_Such.Pkg==1.0", ["no-such-pkg"]),
    ("ERROR: Could not find a version that satisfies the requirement dask==1999 (from versions: "
     "2024.1.0, 2026.8.0)", []),
])
def test_resolvers_words_for_a_name_with_no_release_at_all(output, names):
    from stackgen.common.pypi import unfound_projects
    assert unfound_projects(output) == names


def test_yarn_locks_in_the_shared_wheelhouse_are_named_by_their_digest(stack, tmp_path):
    """Two stacks whose locks resolved the same extension version to different
    trees each find their own yarn.lock in the wheelhouse they share."""
    from stackgen.site.fetch import put_yarn_locks
    ours, theirs = replace(NPM, yarn_lock=YARN_LOCK), replace(NPM, yarn_lock=YARN_LOCK + "\n# another tree\n")
    header = make_lock(stack, [PKG]).header
    for ext in (ours, theirs, ours):
        put_yarn_locks(lockfile.Lock(header=header, packages=(PKG,), npm=(ext,)), tmp_path)
    assert ours.wheelhouse_yarn_lock_file != theirs.wheelhouse_yarn_lock_file
    assert ours.wheelhouse_yarn_lock_file.startswith("acme-lab-theme-1.2.3.")
    assert (tmp_path / ours.wheelhouse_yarn_lock_file).read_text() == ours.yarn_lock
    assert (tmp_path / theirs.wheelhouse_yarn_lock_file).read_text() == theirs.yarn_lock


def test_the_hub_lock_reads_back_as_written_and_pip_reads_its_pins():
    from stackgen.site.hublock import HubLock, HubPin, parse
    hub = HubLock(spec_digest="sha256:" + "a" * 64, python="cpython 3.11.2 linux-x86_64",
                  requirements=("batchspawner==1.3.0", "jupyterhub==6.1.1"),
                  packages=(HubPin("tornado", "6.5.2", ("sha256:" + "2" * 64, "sha256:" + "1" * 64)),
                            HubPin("jupyterhub", "6.1.1", ("sha256:" + "3" * 64,))))
    text = hub.render()
    assert "python3.11 -m venv ENV && ENV/bin/pip install --no-deps --require-hashes" in text
    back = parse(text, "x.hub.txt")
    assert back.pins() == {"jupyterhub": "6.1.1", "tornado": "6.5.2"}
    assert back.render() == text                     # sorted: the same bytes again
    # what both resolvers read back as the previous pins
    assert {r.name: r.version for r in parse_resolved(text)} == back.pins()
    with pytest.raises(InputError, match=r"x.hub.txt:13: unexpected line 'tornado>=6'"):
        parse(text.replace("tornado==6.5.2 \\", "tornado>=6"), "x.hub.txt")
