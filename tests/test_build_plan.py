"""Which modules a build must (re)build: by the easyconfig's content only."""

from __future__ import annotations

from pathlib import Path

from stackgen.build import Module, needs_build


def installed(prefix: Path, module: Module, text: str) -> None:
    module.modulefile(prefix).parent.mkdir(parents=True)
    module.modulefile(prefix).write_text("-- module\n")
    module.installed_easyconfig(prefix).parent.mkdir(parents=True)
    module.installed_easyconfig(prefix).write_text(text)
    digest = module.installdir(prefix) / "share" / "stackgen" / "easyconfig-digest"
    digest.parent.mkdir(parents=True)
    digest.write_text("sha256:0\n")


def test_a_module_is_rebuilt_only_when_its_own_easyconfig_changed(tmp_path):
    ecs = tmp_path / "easyconfigs"
    ecs.mkdir()
    prefix = tmp_path / "prefix"
    common = Module("common", "1", ecs / "common-1.eb")
    lab = Module("lab", "1", ecs / "lab-1.eb")
    common.easyconfig.write_text("exts_list = [('toolz', '1.2.0')]\n")
    lab.easyconfig.write_text("dependencies = [('common', '1')]\n")
    assert needs_build(common, prefix) == "not installed"
    installed(prefix, common, "exts_list = [('toolz', '1.1.0')]\n")
    installed(prefix, lab, lab.easyconfig.read_text())
    assert needs_build(common, prefix) == "its easyconfig changed"
    # lab loads common by name and version at run time: nothing to redo
    assert needs_build(lab, prefix) is None


def test_an_install_without_its_easyconfig_is_rebuilt(tmp_path):
    module = Module("m", "1", tmp_path / "m-1.eb")
    module.easyconfig.write_text("x\n")
    module.modulefile(tmp_path).parent.mkdir(parents=True)
    module.modulefile(tmp_path).write_text("-- made by hand\n")
    assert needs_build(module, tmp_path) == "installed by something else than this easyconfig"


def test_an_install_without_the_digest_users_overlays_read_is_rebuilt(tmp_path):
    module = Module("m", "1", tmp_path / "m-1.eb")
    module.easyconfig.write_text("x\n")
    installed(tmp_path, module, "x\n")
    assert needs_build(module, tmp_path) is None
    (module.installdir(tmp_path) / "share" / "stackgen" / "easyconfig-digest").unlink()
    assert needs_build(module, tmp_path).startswith("installed by an older stackgen")
