"""User overlays on the session-built stack, as an unprivileged user in login
shells: a prebuilt extension from PyPI, refusals that leave the overlay as it
was, a source extension built as a prebuilt one into the overlay, and an overlay
carried onto a second stack version. Nothing under the central prefix changes."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tarfile

import pytest
import yaml

from conftest import REPO, run_stackgen, write_stack
from e2e import E2E_USER, LabServer, ensure_user, login_shell, page_config

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.lmod]

CENTRAL_LABEXTENSIONS = ["dask-labextension", "@jupyterlab/git", "@jupyter-server/resource-usage",
                         "@jupyterhub/jupyter-server-proxy", "jupyterlab-tour"]
MANIFEST = ".local/share/stackgen/overlays/jupyter/2026.11/manifest.json"


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns, p.stat().st_size)
                  for p in root.rglob("*") if not p.is_symlink())


@pytest.fixture(scope="module")
def user(built_stack):
    """The e2e user with no overlay yet; the central prefix must not change."""
    account = ensure_user()
    login_shell("rm -rf ~/.local/share/stackgen ~/.cache/stackgen ~/.jupyter "
                "~/.local/share/jupyter", user=account.pw_name)
    before = snapshot(built_stack.prefix)
    yield account
    assert snapshot(built_stack.prefix) == before, "a user command changed the central install"


def as_user(built, script, version="2026.11", prefix=None, **kw):
    modules = shlex.quote(str((prefix or built.prefix) / "modules" / "all"))
    return login_shell(f"module use {modules} && module load jupyterlab/{version} && {script}",
                       user=E2E_USER, **kw)


def enabled(listing: str, name: str) -> bool:
    return re.search(rf"{re.escape(name)} v\S+ enabled\s+OK", listing) is not None


def manifest_bytes(user) -> bytes | None:
    path = pytest.importorskip("pathlib").Path(user.pw_dir) / MANIFEST
    return path.read_bytes() if path.exists() else None


def test_add_a_prebuilt_extension_beside_the_central_ones(built_stack, user):
    added = as_user(built_stack, "stackgen user-overlay add jupyterlab-execute-time 2>&1",
                    timeout=900)
    assert added.returncode == 0, added.stdout
    assert "added jupyterlab-execute-time" in added.stdout
    listed = as_user(built_stack, "jupyter labextension list 2>&1")      # a fresh shell
    assert enabled(listed.stdout, "jupyterlab-execute-time"), listed.stdout
    for name in CENTRAL_LABEXTENSIONS:
        assert enabled(listed.stdout, name), f"{name}:\n{listed.stdout}"
    info = json.loads(as_user(built_stack, "stackgen user-overlay list --json").stdout)
    assert info["status"] == "current"
    assert [e["name"] for e in info["extensions"]] == ["jupyterlab-execute-time"]
    central = as_user(built_stack, "python -c 'import importlib.metadata as m, json; "
                      "print(json.dumps(sorted(d.metadata[\"Name\"].lower() "
                      "for d in m.distributions())))'")
    assert not set(info["packages"]) - {"jupyterlab-execute-time"} & set(
        json.loads(central.stdout)), "the overlay duplicates a central package"
    doctor = as_user(built_stack, "stackgen user-overlay doctor 2>&1")
    assert doctor.returncode == 0, doctor.stdout


def test_running_lab_lists_the_overlay_extension(built_stack, user):
    server = LabServer(built_stack.prefix, user.pw_dir, user=E2E_USER)
    try:
        server.wait()
        status, html = server.get("/lab")
        federated = {ext["name"] for ext in page_config(html)["federated_extensions"]}
        assert "jupyterlab-execute-time" in federated
        assert {"dask-labextension", "@jupyterlab/git"} <= federated
    finally:
        server.stop()


@pytest.mark.parametrize("extension, message", [
    ("jupyterlab-execute-time==2.3.1", "does not fit the central JupyterLab"),
    ("no-such-extension-stackgen-test", "no package no-such-extension-stackgen-test"),
    ("jupyterlab-lsp==3.10.2", "central pins: jupyterlab==4.6."),
    ("dask", "already part of the central stack"),
])
def test_refused_and_the_overlay_is_unchanged(built_stack, user, extension, message):
    before = manifest_bytes(user)
    result = as_user(built_stack, f"stackgen user-overlay add {shlex.quote(extension)}",
                     timeout=600)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert manifest_bytes(user) == before


def tiny_source_extension(folder):
    """A JupyterLab 4 source extension with a settings schema, as an npm tarball."""
    package = folder / "package"
    (package / "lib").mkdir(parents=True)
    (package / "schema").mkdir()
    (package / "package.json").write_text(json.dumps({
        "name": "stackgen-test-extension", "version": "1.0.0", "main": "lib/index.js",
        "files": ["lib/*.js", "schema/*.json"],
        "dependencies": {"@jupyterlab/application": "^4.0.0"},
        "jupyterlab": {"extension": True, "schemaDir": "schema"}}))
    (package / "lib" / "index.js").write_text(
        "module.exports = [{id: 'stackgen-test-extension:plugin', autoStart: true,\n"
        "  activate: () => { console.log('stackgen-test-extension is active'); }}];\n")
    (package / "schema" / "plugin.json").write_text(json.dumps({
        "title": "stackgen test", "type": "object", "properties": {}}))
    tarball = folder / "stackgen-test-extension-1.0.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(package, arcname="package")
    tarball.chmod(0o644)
    folder.chmod(0o755)
    return tarball


def test_source_extension_is_built_as_a_prebuilt_one_in_the_overlay(built_stack, user, tmp_path):
    """No copy of the app dir and no JUPYTERLAB_DIR of the user's own: the
    extension is built against the central core into the overlay's
    share/jupyter/labextensions."""
    tarball = tiny_source_extension(built_stack.root / "source-ext")
    added = as_user(built_stack, f"stackgen user-overlay add --source {tarball} 2>&1",
                    timeout=1800)
    assert added.returncode == 0, added.stdout[-3000:]
    assert "stackgen-test-extension@1.0.0: building it as a prebuilt extension" in added.stdout
    listed = as_user(built_stack, "echo JUPYTERLAB_DIR=$JUPYTERLAB_DIR; "
                                  "jupyter labextension list 2>&1")
    assert "stackgen/overlays/jupyter/2026.11/app" not in listed.stdout
    assert "JUPYTERLAB_DIR=" + str(built_stack.prefix / "software" / "jupyterlab") in listed.stdout
    assert "stackgen/overlays/jupyter/2026.11/share/jupyter/labextensions" in listed.stdout
    for name in ["stackgen-test-extension", "jupyterlab-execute-time", *CENTRAL_LABEXTENSIONS]:
        assert enabled(listed.stdout, name), f"{name}:\n{listed.stdout}"


@pytest.fixture(scope="module")
def second_version(built_stack):
    """The same stack as version 2026.12, locked and built into a prefix of its
    own (the shared stack's `module load jupyterlab` stays 2026.11)."""
    data = yaml.safe_load((REPO / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(REPO / p) for p in data["base"]["modulepath"]]
    data["stack"]["version"] = "2026.12"
    spec = built_stack.root / "spec-2026.12"
    write_stack(spec, data)
    (spec / "lockfiles").mkdir()
    shutil.copy(built_stack.spec / "lockfiles" / "jupyter-2026.11.txt",
                spec / "lockfiles" / "jupyter-2026.12.txt")
    shutil.copytree(built_stack.spec / "lockfiles" / "jupyter-2026.11.npm",
                    spec / "lockfiles" / "jupyter-2026.12.npm")
    locked = run_stackgen("lock", "--resolver", "uv", cwd=spec)
    assert locked.returncode == 0, locked.stderr
    prefix = built_stack.root / "prefix-2026.12"
    built = run_stackgen("build", "--prefix", str(prefix), cwd=spec, timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    prefix.chmod(0o755)
    return prefix


def test_overlay_is_reported_stale_and_synced_onto_a_new_version(built_stack, user,
                                                                second_version):
    new = dict(version="2026.12", prefix=second_version)
    loaded = as_user(built_stack, "stackgen user-overlay list", **new)
    assert "you have an overlay for jupyter 2026.11" in loaded.stderr
    assert "you have overlays for 2026.11" in loaded.stdout
    synced = as_user(built_stack, "stackgen user-overlay sync 2>&1", timeout=1800, **new)
    assert synced.returncode == 0, synced.stdout[-3000:]
    listed = as_user(built_stack, "jupyter labextension list 2>&1; stackgen user-overlay list",
                     **new)
    assert "stackgen/overlays/jupyter/2026.12" in listed.stdout
    assert "(current)" in listed.stdout
    for name in ["jupyterlab-execute-time", "stackgen-test-extension", *CENTRAL_LABEXTENSIONS]:
        assert enabled(listed.stdout, name), f"{name}:\n{listed.stdout}"


def test_reset_brings_back_the_central_bundle_alone(built_stack, user, second_version):
    new = dict(version="2026.12", prefix=second_version)
    reset = as_user(built_stack, "stackgen user-overlay reset", **new)
    assert reset.returncode == 0, reset.stderr
    listed = as_user(built_stack, "jupyter labextension list 2>&1", **new)
    assert "jupyterlab-execute-time" not in listed.stdout
    assert enabled(listed.stdout, "dask-labextension")
