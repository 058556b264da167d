"""A user's kernels under hostile names and clashes: a newline never leaves a
quoted word, a kernel stackgen did not make is never replaced, a site kernel
is never removed, and `venv create` is all or nothing."""

from __future__ import annotations

import json
import subprocess
from argparse import Namespace
from pathlib import Path

import pytest

from stackgen.common.errors import InputError
from stackgen.common.kernels import KernelSpec, launcher_text
from stackgen.user import kernel_commands


@pytest.fixture
def central(tmp_path, monkeypatch):
    """A loaded stack as its module describes it; kernels go to tmp_path/data."""
    values = {"STACKGEN_STACK": "demo", "STACKGEN_STACK_VERSION": "2",
              "STACKGEN_BUNDLE": "sha256:aa", "STACKGEN_APP_DIR": "/apps/software/lab/2/share/jupyter/lab",
              "STACKGEN_PYTHON_VERSION": "3.11", "STACKGEN_MODULE": "lab/2",
              "STACKGEN_MODULEPATH": "/apps/modules/all",
              "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PATH": str(tmp_path / "site")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return tmp_path / "data" / "kernels"


def add(name, **options):
    args = {"name": name, "venv": None, "module": [], "env": [], "display_name": None,
            "install_ipykernel": False, "force": False, **options}
    return kernel_commands.kernel_add(Namespace(**args))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_newline_in_a_display_name_cannot_reach_the_launcher(tmp_path):
    marker = tmp_path / "ran"
    spec = KernelSpec(name="k", display_name=f"ok\ntouch {marker}\n# ", stack_module="lab/2",
                      modulepath="/m", lmod_init="/dev/null")
    text = launcher_text(spec)
    assert "touch" not in text and spec.display_name not in text
    script = tmp_path / "kernel.sh"
    script.write_text(text.replace("exec python", "exit 0 #"))
    subprocess.run(["bash", str(script), "conn.json"], env={"PATH": "/usr/bin:/bin"},
                   capture_output=True)
    assert not marker.exists()


@pytest.mark.parametrize("display", ["two\nlines", "a\rb", "bell\x07", "nul\x00"])
def test_kernel_add_refuses_control_characters_in_display_names(central, display):
    with pytest.raises(InputError, match="newline or another control character"):
        add("k", display_name=display)
    assert not central.exists() or not list(central.iterdir())


def test_kernel_add_never_replaces_a_kernel_stackgen_did_not_make(central):
    mine = central / "analysis"
    mine.mkdir(parents=True)
    (mine / "kernel.json").write_text('{"argv": ["python"], "display_name": "by hand"}\n')
    before = tree(central)
    with pytest.raises(InputError, match="stackgen did not make; it is left as it is"):
        add("analysis")
    with pytest.raises(InputError, match="stackgen did not make"):
        add("analysis", force=True)
    assert tree(central) == before


def test_kernel_add_replaces_its_own_only_with_force(central):
    add("analysis", env=["A=1"])
    before = tree(central)
    with pytest.raises(InputError, match="you already have a kernel analysis") as err:
        add("Analysis", env=["A=2"])
    assert "--force to replace it" in err.value.hint
    assert tree(central) == before
    add("analysis", env=["A=2"], force=True)
    assert "export A=2" in (central / "analysis" / "kernel.sh").read_text()


def test_kernel_remove_refuses_a_site_kernel(central, tmp_path):
    site = tmp_path / "site" / "kernels" / "python3-dask"
    site.mkdir(parents=True)
    (site / "kernel.json").write_text(json.dumps({"metadata": {"stackgen": {"site": "true"}}}))
    with pytest.raises(InputError, match="is a kernel of the site") as err:
        kernel_commands.kernel_remove(Namespace(name="python3-dask"))
    assert "cannot be removed" in err.value.message
    assert (site / "kernel.json").exists()


def test_kernel_remove_refuses_what_stackgen_did_not_make(central):
    (central / "mine").mkdir(parents=True)
    (central / "mine" / "kernel.json").write_text("not json")
    with pytest.raises(InputError, match="no kernel mine made by stackgen"):
        kernel_commands.kernel_remove(Namespace(name="mine"))
    assert (central / "mine" / "kernel.json").read_text() == "not json"


def venv_args(path, **options):
    return Namespace(**{"path": str(path), "name": None, "display_name": None, **options})


def test_venv_create_is_all_or_nothing(central, tmp_path, monkeypatch):
    def failing(spec):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(kernel_commands, "_write_kernel", failing)
    target = tmp_path / "venvs" / "analysis"
    with pytest.raises(OSError):
        kernel_commands.venv_create(venv_args(target))
    assert not target.exists()
    empty = tmp_path / "venvs" / "given-empty"
    empty.mkdir()
    with pytest.raises(OSError):
        kernel_commands.venv_create(venv_args(empty))
    assert empty.is_dir() and not list(empty.iterdir())


def test_venv_create_refuses_a_clash_before_making_anything(central, tmp_path):
    (central / "analysis").mkdir(parents=True)
    (central / "analysis" / "kernel.json").write_text("{}")
    target = tmp_path / "venvs" / "analysis"
    with pytest.raises(InputError, match="stackgen did not make"):
        kernel_commands.venv_create(venv_args(target))
    assert not target.exists()


def test_venv_create_refuses_a_newline_in_its_folder_name_as_display_name(central, tmp_path):
    target = tmp_path / "venvs" / "bad\nname"
    with pytest.raises(InputError, match="control character"):
        kernel_commands.venv_create(venv_args(target))
    assert not target.exists()
