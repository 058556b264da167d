"""Unit tests of the overlay's pure parts: the manifest, where an overlay
lives, the swap that replaces it whole, what a wheel says about its lab
extensions, and the messages for extensions that cannot be added."""

from __future__ import annotations

import json
import zipfile

import pytest

from stackgen.common.errors import InputError
from stackgen.user.overlay import Central, Extension, Manifest, Overlay, refuse_central, status
from stackgen.user.overlay_install import explain, labextensions_in, parse_requirement

ENV = {"STACKGEN_STACK": "jupyter", "STACKGEN_STACK_VERSION": "2026.11",
       "STACKGEN_BUNDLE": "sha256:aa", "STACKGEN_APP_DIR": "/central/share/jupyter/lab",
       "STACKGEN_PYTHON_VERSION": "3.11", "STACKGEN_MODULE": "lab/2026.11",
       "STACKGEN_MODULEPATH": "/central/software/lab/2026.11/../../../modules/all"}


def test_central_comes_from_the_module_and_its_absence_is_explained():
    central = Central.from_environment(ENV)
    assert (central.stack, central.version, central.python_version) == ("jupyter", "2026.11", "3.11")
    # the lab module as stack.yaml names it, and where the stack's module files are
    assert (central.module, str(central.modulepath)) == ("lab/2026.11", "/central/modules/all")
    with pytest.raises(InputError) as err:
        Central.from_environment({})
    assert "module load jupyterlab" in err.value.hint


def test_overlay_lives_under_xdg_data_home_per_stack_version(tmp_path):
    central = Central.from_environment(ENV)
    overlay = Overlay.for_central(central, {"XDG_DATA_HOME": str(tmp_path)})
    assert overlay.root == tmp_path / "stackgen" / "overlays" / "jupyter" / "2026.11"
    assert overlay.site_packages == overlay.root / "lib" / "python3.11" / "site-packages"
    home = Overlay.for_central(central, {"HOME": str(tmp_path)})
    assert home.root == tmp_path / ".local" / "share" / "stackgen" / "overlays" / "jupyter" / "2026.11"


MANIFEST = Manifest("jupyter", "2026.11", "sha256:aa",
                    (Extension("jupyterlab-execute-time", "jupyterlab-execute-time", "prebuilt",
                               "3.2.0", ("jupyterlab-execute-time",)),),
                    (("jupyterlab-execute-time", "3.2.0"),))


def test_manifest_round_trip_and_refusals():
    assert Manifest.from_json(MANIFEST.to_json(), "m") == MANIFEST
    newer = json.loads(MANIFEST.to_json()) | {"format": 99}
    with pytest.raises(InputError, match="format 99"):
        Manifest.from_json(json.dumps(newer), "m")
    with pytest.raises(InputError, match="not a readable overlay manifest"):
        Manifest.from_json("{", "m")


def holding_what_the_manifest_lists(folder):
    """An overlay folder with the files of MANIFEST's extension."""
    (folder / "lib/python3.11/site-packages/jupyterlab_execute_time-3.2.0.dist-info").mkdir(parents=True)
    (folder / "share/jupyter/labextensions/jupyterlab-execute-time").mkdir(parents=True)
    return folder


def test_swap_replaces_the_overlay_whole_and_status_follows_the_bundle(tmp_path):
    central = Central.from_environment(ENV)
    overlay = Overlay.for_central(central, {"XDG_DATA_HOME": str(tmp_path)})
    assert status(overlay, central) == "none"
    first = holding_what_the_manifest_lists(overlay.scratch())
    (first / "old-file").write_text("x")
    overlay.swap_in(first, MANIFEST)
    assert status(overlay, central) == "current"
    assert (overlay.root / "stackgen-bundle").read_text() == "sha256:aa\n"
    assert (overlay.stack_dir / "latest").read_text() == "2026.11\n"
    second = holding_what_the_manifest_lists(overlay.scratch())
    overlay.swap_in(second, MANIFEST)
    assert not (overlay.root / "old-file").exists()
    assert sorted(p.name for p in overlay.stack_dir.iterdir()) == ["2026.11", "latest"]
    rebuilt = Central.from_environment(ENV | {"STACKGEN_BUNDLE": "sha256:bb"})
    assert status(overlay, rebuilt) == "stale"
    overlay.remove()
    assert status(overlay, central) == "none"


def test_labextensions_are_read_from_the_wheel(tmp_path):
    wheel = tmp_path / "ext-1.0-py3-none-any.whl"
    package = {"name": "ext", "dependencies": {"@jupyterlab/application": "^3.0.0"}}
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("ext-1.0.data/data/share/jupyter/labextensions/ext/package.json",
                     json.dumps(package))
        whl.writestr("ext-1.0.data/data/share/jupyter/labextensions/ext/static/x.js", "")
        whl.writestr("ext/__init__.py", "")
    assert labextensions_in(wheel) == {"ext": package}


@pytest.mark.parametrize("output, message", [
    ("ERROR: Could not find a version that satisfies the requirement nosuchpkg (from versions: "
     "none)\nERROR: No matching distribution found for nosuchpkg\n", "no package nosuchpkg"),
    ("ERROR: Cannot install tornado<6 because these package versions have conflicting "
     "dependencies.\n\nThe conflict is caused by:\n    The user requested tornado<6\n"
     "    The user requested (constraint) tornado==6.5.2\n\n", "central pins: tornado==6.5.2"),
])
def test_refusals_name_the_package_and_the_central_pin(output, message):
    err = explain(output, {"tornado": "6.5.2"})
    assert isinstance(err, InputError) and message in err.message


def test_central_packages_and_bad_requirements_are_refused():
    with pytest.raises(InputError, match="already part of the central stack"):
        refuse_central("dask", {"dask": "2026.8.0"})
    with pytest.raises(InputError, match="not a package requirement"):
        parse_requirement("jupyterlab-execute-time==3.x")


def test_an_interrupted_change_is_cleaned_up_by_the_next(tmp_path):
    central = Central.from_environment(ENV)
    overlay = Overlay.for_central(central, {"XDG_DATA_HOME": str(tmp_path)})
    left = overlay.scratch()
    (left / "half-written").write_text("x")
    with overlay.locked():
        assert not left.exists()


@pytest.mark.parametrize("spec, expected", [
    ("jupyterlab-tour", ("jupyterlab-tour", "jupyterlab-tour", "")),
    ("jupyterlab-tour@4.0.1", ("jupyterlab-tour@4.0.1", "jupyterlab-tour", "4.0.1")),
    ("@acme/ext@1.2.3", ("@acme/ext@1.2.3", "@acme/ext", "1.2.3")),
    ("@acme/ext", ("@acme/ext", "@acme/ext", "")),
])
def test_source_extension_names(spec, expected):
    from stackgen.user.overlay_install import source_extension
    assert source_extension(spec) == expected


def test_a_local_tarball_is_named_by_its_package_json(tmp_path):
    import tarfile

    from stackgen.user.overlay_install import source_extension
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "package.json").write_text('{"name": "my-ext", "version": "0.1.0"}')
    tarball = tmp_path / "my-ext-0.1.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "package", arcname="package")
    assert source_extension(str(tarball)) == (str(tarball), "my-ext", "0.1.0")
    (tmp_path / "junk.tgz").write_text("no")
    with pytest.raises(InputError, match="not an npm package tarball"):
        source_extension(str(tmp_path / "junk.tgz"))


def test_two_changes_at_once_take_turns(tmp_path):
    """A second `add` waits for the first: the file lock is held across processes."""
    import subprocess
    import sys
    import time
    central = Central.from_environment(ENV)
    overlay = Overlay.for_central(central, {"XDG_DATA_HOME": str(tmp_path)})
    order = tmp_path / "order"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from pathlib import Path
from stackgen.user.overlay import Overlay
with Overlay(Path({str(overlay.root)!r})).locked():
    Path({str(order)!r}).write_text("first\\n")
    time.sleep(1.5)
    with open({str(order)!r}, "a") as fh:
        fh.write("first done\\n")
"""])
    deadline = time.monotonic() + 30
    while not order.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with overlay.locked():
        with open(order, "a") as fh:
            fh.write("second\n")
    holder.wait()
    assert order.read_text() == "first\nfirst done\nsecond\n"
