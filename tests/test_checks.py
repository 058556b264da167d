"""The parts that let a build skip what it knows: a module's checks recorded
by the digest of their inputs and the look at an install that decides
whether a record still holds, the permissions settled in one walk, the
wheelhouse's digests kept with their stat data, and EasyBuild's main as
stackgen runs it (stackgen.site.ebmain)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stackgen.common.download import DigestMemo, digest_for, digest_of
from stackgen.site import ebmain
from stackgen.site.easyblocks import install

INPUTS = {"easyconfig": "sha256:aa", "loaded": {"EBROOTDASK": "sha256:bb"},
          "context": {"python": ["/b/python3", "3.11.2", 10, 1], "path": []},
          "checks": [["six", "six"]], "pip_check": True, "code": "c0"}


def test_the_check_key_is_the_same_for_the_same_inputs_and_differs_for_any_other():
    assert install.inputs_digest(INPUTS) == install.inputs_digest(json.loads(json.dumps(INPUTS)))
    keys = {install.inputs_digest(INPUTS)}
    for field, other in [("easyconfig", "sha256:ab"), ("loaded", {"EBROOTDASK": "sha256:bc"}),
                         ("context", {"python": ["/b/python3", "3.11.2", 10, 2], "path": []}),
                         ("checks", [["six", "six"], ["x", "x"]]), ("pip_check", False),
                         ("code", "c1")]:
        keys.add(install.inputs_digest({**INPUTS, field: other}))
    assert len(keys) == 7


def test_a_recorded_pass_is_read_back_and_a_broken_record_is_none(tmp_path):
    cache = tmp_path / "checks"
    assert install.recorded_pass(cache, "k1") is None
    install.record_pass(cache, "k1", {"module": "m/1", "imports": 3})
    assert install.recorded_pass(cache, "k1") == {"module": "m/1", "imports": 3}
    (cache / "k2.json").write_text("{half")
    assert install.recorded_pass(cache, "k2") is None
    assert sorted(p.name for p in cache.iterdir()) == ["k1.json", "k2.json"]     # no scratch left


def fake_install(root):
    """An install of one distribution as uv leaves it: a module, a script
    outside the site dir, and the RECORD naming both with their sizes."""
    site = root / "lib" / "python3.11" / "site-packages"
    (site / "six-1.17.0.dist-info").mkdir(parents=True)
    (site / "six.py").write_text("x = 1\n")
    (root / "bin").mkdir()
    (root / "bin" / "six-tool").write_text("#!/usr/bin/python\n")
    (site / "six-1.17.0.dist-info" / "METADATA").write_text("Name: six\n")
    (site / "six-1.17.0.dist-info" / "RECORD").write_text(
        "six.py,sha256=x,6\n../../../bin/six-tool,sha256=y,18\n"
        "six-1.17.0.dist-info/METADATA,,\nsix-1.17.0.dist-info/RECORD,,\n")
    return site


def test_an_install_is_whole_when_every_file_of_its_record_is_there(tmp_path):
    site = fake_install(tmp_path)
    assert install.install_faults([site], [("six", "1.17.0")]) == []
    # EasyBuild rewrites a script's shebang: outside the site dir only presence counts
    (tmp_path / "bin" / "six-tool").write_text("#!/usr/bin/env python\n")
    assert install.install_faults([site], [("six", "1.17.0")]) == []


def test_what_is_missing_or_different_from_the_wheels_is_named(tmp_path):
    site = fake_install(tmp_path)
    assert install.install_faults([site], [("six", "1.16.0")]) == \
        ["six 1.16.0: the install holds version 1.17.0"]
    assert install.install_faults([site], [("Six", "1.17.0"), ("toolz", "1.0.0")]) == \
        ["toolz 1.0.0: no .dist-info in the install"]
    (site / "six.py").write_text("x = 12\n")
    assert install.install_faults([site], [("six", "1.17.0")]) == \
        ["six 1.17.0: six.py has 7 bytes, its RECORD says 6"]
    (site / "six.py").unlink()
    (tmp_path / "bin" / "six-tool").unlink()
    assert install.install_faults([site], [("six", "1.17.0")]) == \
        ["six 1.17.0: six.py is missing", "six 1.17.0: ../../../bin/six-tool is missing"]


def test_the_check_context_names_the_interpreter_and_every_distribution_but_the_own(tmp_path):
    own, other = fake_install(tmp_path / "own"), fake_install(tmp_path / "other")
    env = dict(os.environ, PYTHONPATH=f"{own}:{other}")
    result = subprocess.run([sys.executable, "-c", install.CHECK_CONTEXT, str(tmp_path / "own")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    context = json.loads(result.stdout)
    assert context["python"][:2] == [os.path.realpath(sys.executable), sys.version]
    assert ["site-packages", ["six-1.17.0.dist-info"]] in context["path"]
    assert len([p for p in context["path"] if p[1] == ["six-1.17.0.dist-info"]]) == 1
    assert str(tmp_path) not in result.stdout      # nothing of where the modules are


def test_permissions_are_settled_as_easyblock_settles_them_in_one_walk(tmp_path):
    root = tmp_path / "install"
    (root / "sub").mkdir(parents=True)
    (root / "sub").chmod(0o700)
    (root / "open.txt").write_text("a")
    (root / "open.txt").chmod(0o666)
    (root / "private.txt").write_text("b")
    (root / "private.txt").chmod(0o600)
    (root / "sub" / "tool").write_text("c")
    (root / "sub" / "tool").chmod(0o770)
    (root / "link").symlink_to("open.txt")
    assert install.settle_permissions(root, 0o022) == 4
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in [root / "open.txt", root / "private.txt",
                                                               root / "sub", root / "sub" / "tool"]}
    assert modes == {"open.txt": 0o644, "private.txt": 0o644, "sub": 0o755, "tool": 0o754}
    assert install.settle_permissions(root, 0o022) == 0          # nothing left to change


def test_a_digest_is_taken_once_and_again_after_any_write(tmp_path):
    wheel = tmp_path / "a.whl"
    wheel.write_bytes(b"wheel")
    memo = DigestMemo(tmp_path / "digests.json")
    expected = digest_of(wheel, "sha256")
    assert memo.known(wheel, "sha256") is None
    assert digest_for(wheel, "sha256:", memo) == expected
    memo.save()
    again = DigestMemo(tmp_path / "digests.json")
    assert again.known(wheel, "sha256") == expected
    assert again.known(wheel, "sha512") is None
    wheel.write_bytes(b"wheeL")                   # same size, any write changes its ctime
    assert again.known(wheel, "sha256") is None
    assert digest_for(wheel, "sha256:", again) == digest_of(wheel, "sha256") != expected
    again.forget(wheel)
    assert again.known(wheel, "sha256") is None
    (tmp_path / "broken.json").write_text("[1, 2")
    assert DigestMemo(tmp_path / "broken.json").entries == {}


class Caller:
    def log(self):
        return ebmain._calling_class_name(1)


def test_easybuilds_main_as_stackgen_runs_it_names_the_same_caller_and_sums(tmp_path):
    from easybuild.base import fancylogger
    from easybuild.tools.filetools import compute_checksum

    class Original:
        def log(self):
            return fancylogger._getCallingClassName(1)

    assert Caller().log() == "Caller" and Original().log() == "Original"
    known, unknown = tmp_path / "known.whl", tmp_path / "unknown.whl"
    known.write_bytes(b"k")
    unknown.write_bytes(b"u")
    memo = DigestMemo(tmp_path / "digests.json")
    memo.digest(known, "sha256")
    memo.entries[os.path.realpath(known)][6] = "sha256:" + "0" * 64      # what the memo says wins
    checksum = ebmain.checksum_by(memo)
    assert checksum(str(known)) == "0" * 64
    assert checksum(str(unknown)) == compute_checksum(str(unknown))
    assert checksum(str(known), "md5") == compute_checksum(str(known), "md5")


# Run by a fresh interpreter (EasyBuild's configuration is global): the
# reference stack's jupyterlab easyconfig, copied as each extension's copy is.
COPY_EASYCONFIG = r"""
import json, sys
from easybuild.tools.options import set_up_configuration
set_up_configuration(args=["--include-easyblocks=" + sys.argv[2], "--modules-tool=Lmod",
                           "--allow-use-as-root-and-accept-consequences", "--tmpdir=" + sys.argv[3],
                           "--installpath=" + sys.argv[3], "--buildpath=" + sys.argv[3]], silent=True)
from easybuild.framework.easyconfig.easyconfig import EasyConfig
from stackgen.site.easyblocks.install import SHARED_PARAMETERS, copy_easyconfig
ec = EasyConfig(sys.argv[1])
ours, eb = copy_easyconfig(ec), ec.copy()
out = {"differ": sorted(k for k in ec._config if ours._config[k][0] != eb._config[k][0]),
       "templates": ours.template_values == eb.template_values,
       "shared": sorted(k for k in SHARED_PARAMETERS if ours._config[k][0] is ec._config[k][0]),
       "own": sorted(k for k in ("dependencies", "sanity_check_paths", "modextrapaths")
                     if ours._config[k][0] is ec._config[k][0])}
ours.update("exts_list", [("x", "1")])
ours["site_kernels"] = []
ours.update("dependencies", [("x", "1")])
out["master"] = [len(ec["exts_list"]), len(ec["site_kernels"]), len(ec["dependencies"])]
out["before"] = [len(eb["exts_list"]), len(eb["site_kernels"]), len(eb["dependencies"])]
print(json.dumps(out))
"""


@pytest.mark.lmod
def test_an_extensions_copy_of_the_easyconfig_equals_easybuilds_and_changes_nothing_of_the_bundles(tmp_path):
    from stackgen.site.lmod import lmod_cmd
    root = Path(__file__).resolve().parent.parent
    easyblock = root / "stackgen" / "site" / "easyblocks" / "stackgenbundle.py"
    result = subprocess.run([sys.executable, "-c", COPY_EASYCONFIG, str(root / "easyconfigs" / "jupyterlab-2026.11.eb"),
                             str(easyblock), str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "FANCYLOGGER_IGNORE_MPI4PY": "1", "LMOD_CMD": lmod_cmd()})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["differ"] == [] and out["templates"]
    assert out["shared"] == sorted(install.SHARED_PARAMETERS) and out["own"] == []
    assert out["master"] == out["before"]      # an extension's update or setting stays its own
