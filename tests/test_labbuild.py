"""The pure parts of building a source extension as a prebuilt one
(stackgen.common.labbuild): the package.json the build installs from, where
the built extension goes, and the locked registry that serves only the
lock's tarballs."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.request

import pytest

from stackgen.common import labbuild

PACKAGE = {"name": "@acme/tour", "version": "1.0.0", "main": "lib/index.js",
           "dependencies": {"@jupyterlab/application": "^4.0.0"},
           "devDependencies": {"@jupyterlab/builder": "^4.1.0", "eslint": "^8", "jest": "^29"},
           "scripts": {"postinstall": "curl evil"}, "jupyterlab": {"extension": True,
                                                                    "outputDir": "acme/labextension"}}


def npm_tarball(path, package):
    data = json.dumps(package).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_the_build_installs_the_runtime_side_and_the_extensions_own_builder():
    kept = labbuild.build_manifest(PACKAGE, "4.6.6")
    assert kept["devDependencies"] == {"@jupyterlab/builder": "^4.1.0"}
    assert "scripts" not in kept and kept["dependencies"] == PACKAGE["dependencies"]
    bare = {k: v for k, v in PACKAGE.items() if k != "devDependencies"}
    assert labbuild.build_manifest(bare, "4.6.6")["devDependencies"] == \
        {"@jupyterlab/builder": "^4.0.0"}          # the central JupyterLab's major


def test_prepare_writes_the_same_folder_for_the_lock_and_the_build(tmp_path):
    tarball = npm_tarball(tmp_path / "tour.tgz", PACKAGE)
    first = tmp_path / "a"
    labbuild.prepare(tarball, first, "4.6.6", "http://127.0.0.1:9", yarn_lock="locked\n")
    again = tmp_path / "b"
    labbuild.prepare(tarball, again, "4.6.6", "http://127.0.0.1:9", yarn_lock="locked\n")
    assert (first / "package.json").read_bytes() == (again / "package.json").read_bytes()
    rc = (first / ".yarnrc.yml").read_text()
    assert "nodeLinker: node-modules" in rc and "enableScripts: false" in rc
    assert 'npmRegistryServer: "http://127.0.0.1:9"' in rc and '- "127.0.0.1"' in rc
    assert (first / "yarn.lock").read_text() == "locked\n"


def test_the_built_extension_is_installed_with_its_install_json(tmp_path):
    built = tmp_path / "pkg" / "acme" / "labextension"
    (built / "static").mkdir(parents=True)
    (built / "package.json").write_text("{}")
    target = labbuild.install_built(tmp_path / "pkg", PACKAGE, tmp_path / "labextensions", "how")
    assert target == tmp_path / "labextensions" / "@acme" / "tour"
    assert json.loads((target / "install.json").read_text())["packageName"] == "@acme/tour"
    with pytest.raises(ValueError, match="leaves the package"):
        labbuild.output_dir({"name": "x", "jupyterlab": {"outputDir": "../../etc"}})


def test_the_locked_registry_serves_the_locks_tarballs_and_nothing_else(tmp_path):
    tgz = tmp_path / "ajv-8.17.1.tgz"
    tgz.write_bytes(b"\x1f\x8b locked")
    scoped = tmp_path / "jupyterlab-builder-4.5.11.tgz"
    scoped.write_bytes(b"\x1f\x8b scoped")
    served = {labbuild.registry_path("ajv", "8.17.1"): tgz,
              labbuild.registry_path("@jupyterlab/builder", "4.5.11"): scoped}
    with labbuild.LockedRegistry(served) as registry:
        assert urllib.request.urlopen(f"{registry.url}/ajv/-/ajv-8.17.1.tgz").read() == b"\x1f\x8b locked"
        assert urllib.request.urlopen(
            f"{registry.url}/@jupyterlab%2fbuilder/-/builder-4.5.11.tgz").read() == b"\x1f\x8b scoped"
        for path in ("/ajv", "/ajv/-/ajv-8.18.0.tgz", "/../etc/passwd"):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{registry.url}{path}")
    assert registry.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("filters", [True, False], ids=["tarfile-filters", "python-3.11.2"])
def test_a_package_tarball_is_extracted_inside_its_folder_only(tmp_path, monkeypatch, filters):
    """The module's Python may predate tarfile's filters (Debian 12's 3.11.2)."""
    import io
    import tarfile

    from stackgen.common.labbuild import safe_extract
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def tarball(name):
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.tgz"
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        return path

    with tarfile.open(tarball("package/package.json")) as tar:
        safe_extract(tar, tmp_path / "out")
    assert (tmp_path / "out" / "package" / "package.json").read_text() == "{}"
    with tarfile.open(tarball("../escaped.json")) as tar, pytest.raises(Exception):
        safe_extract(tar, tmp_path / "out2")
    assert not (tmp_path / "escaped.json").exists()


ENTRY = {"name": "@acme/tour", "version": "1.0.0", "tarball": "acme-tour-1.0.0.tgz",
         "integrity": "sha512-aaaa", "yarn_lock": ("acme-tour-1.0.0.yarn.lock", "sha256:bbbb"),
         "tree": [("b", "2.0.0", "sha512-b"), ("a", "1.0.0", "sha512-a")]}


def test_a_build_is_kept_by_the_digest_of_every_input():
    from stackgen.site.easyblocks.sources import build_key
    key = build_key(ENTRY, "sha256:lab", "v20.1.0", "recipe")
    assert key == build_key(dict(ENTRY, tree=ENTRY["tree"][::-1]), "sha256:lab", "v20.1.0", "recipe")
    changed = [build_key(dict(ENTRY, integrity="sha512-other"), "sha256:lab", "v20.1.0", "recipe"),
               build_key(dict(ENTRY, yarn_lock=("x", "sha256:cccc")), "sha256:lab", "v20.1.0", "recipe"),
               build_key(dict(ENTRY, tree=[("a", "1.0.1", "sha512-a2")]), "sha256:lab", "v20.1.0", "recipe"),
               build_key(ENTRY, "sha256:otherlab", "v20.1.0", "recipe"),
               build_key(ENTRY, "sha256:lab", "v22.0.0", "recipe"),
               build_key(ENTRY, "sha256:lab", "v20.1.0", "other recipe")]
    assert len({key, *changed}) == 7


def test_a_kept_build_is_whole_and_the_first_one_kept_wins(tmp_path):
    from stackgen.site.easyblocks.sources import cached_build, keep_build
    cache = tmp_path / "cache"
    assert cached_build(str(cache), "k") is None and cached_build("", "k") is None
    built = tmp_path / "built"
    (built / "static").mkdir(parents=True)
    (built / "package.json").write_text('{"name": "@acme/tour"}')
    (built / "static" / "remoteEntry.js").write_text("first")
    keep_build(str(cache), "k", str(built))
    (built / "static" / "remoteEntry.js").write_text("second")
    keep_build(str(cache), "k", str(built))
    kept = cached_build(str(cache), "k")
    assert (tmp_path / "cache" / "k" / "static" / "remoteEntry.js").read_text() == "first"
    assert kept and sorted(p.name for p in cache.iterdir()) == ["k"]        # no scratch left
    target = labbuild.install_prebuilt(kept, "@acme/tour", tmp_path / "labextensions", "how")
    assert target == tmp_path / "labextensions" / "@acme" / "tour"
    assert json.loads((target / "install.json").read_text())["packageName"] == "@acme/tour"


def test_jlpm_is_read_from_the_jupyter_builder_wheel(tmp_path):
    import zipfile

    from stackgen.site.easyblocks.sources import yarn_js_from_wheel
    wheel = tmp_path / "jupyter_builder-1.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr(labbuild.YARN_JS, "// yarn")
    path = yarn_js_from_wheel(str(wheel), str(tmp_path / "work"))
    assert open(path).read() == "// yarn"
