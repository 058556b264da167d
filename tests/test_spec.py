"""stack.yaml validation: every bad input is one clear screen naming the
file, line and key, exit code 2, and nothing written."""

from __future__ import annotations

import hashlib

import pytest

from stackgen.common.errors import SpecError
from stackgen.site.spec import load_stack

from conftest import run_stackgen

GOOD = """\
stack:
  name: demo
  version: "1"
base:
  module: cray-python/3.11
modules:
  dask:
    packages:
      - dask==2026.*
  lab:
    depends: [dask]
    packages:
      - jupyterlab==4.6.*
    extensions:
      - jupyterlab-git
settings:
  lab:
    extension_manager: readonly
"""

# (id, document, line of the error, text the message must hold)
BAD = [
    ("unknown-top-key", GOOD + "extensionz: []\n", 19, "unknown key 'extensionz'"),
    ("did-you-mean", GOOD.replace("settings:", "setings:"), 16, "did you mean 'settings'"),
    ("unknown-module-key", GOOD.replace("    depends: [dask]", "    depend: [dask]"), 11,
     "unknown key 'depend'"),
    ("packages-a-string", GOOD.replace("    packages:\n      - dask==2026.*",
                                       "    packages: dask==2026.*"), 8, "expected a list"),
    ("unquoted-version", GOOD.replace('version: "1"', "version: 2026.10"), 3, 'quote it'),
    ("bad-specifier", GOOD.replace("jupyterlab==4.6.*", "jupyterlab==4.6.x"), 13,
     "invalid requirement 'jupyterlab==4.6.x'"),
    ("bad-operator", GOOD.replace("dask==2026.*", "dask>>=1"), 9, "invalid requirement"),
    ("duplicate-package", GOOD.replace("      - jupyterlab-git", "      - Dask"), 15,
     "package 'dask' is listed twice"),
    ("duplicate-canonical", GOOD.replace("      - jupyterlab-git", "      - Jupyter_Server\n"
                                         "      - jupyter-server"), 16, "listed twice"),
    ("duplicate-yaml-key", GOOD.replace("  lab:\n    depends", "  dask:\n    depends"), 10,
     "duplicate key"),
    ("unknown-depends", GOOD.replace("depends: [dask]", "depends: [dusk]"), 11,
     "unknown module 'dusk'"),
    ("self-depends", GOOD.replace("depends: [dask]", "depends: [lab]"), 11, "depends on itself"),
    ("cycle", GOOD.replace("    packages:\n      - dask==2026.*",
                           "    depends: [lab]\n    packages:\n      - dask==2026.*"), 8,
     "form a cycle"),
    ("missing-base", GOOD.replace("base:\n  module: cray-python/3.11\n", ""), 1,
     "missing required key 'base'"),
    ("base-without-version", GOOD.replace("cray-python/3.11", "cray-python"), 5,
     "'cray-python' is not valid"),
    ("yaml-tab", GOOD.replace("  dask:\n    packages", "  dask:\n\tpackages"), 8, "YAML syntax"),
    ("yaml-unclosed", GOOD.replace("depends: [dask]", "depends: [dask"), 12, "YAML syntax"),
    ("empty-file", "", 1, "the file is empty"),
    ("top-level-list", "- stack\n- base\n", 1, "must be a mapping"),
    ("module-without-packages", GOOD.replace("    packages:\n      - dask==2026.*\n",
                                             "    description: nothing\n"), 8, "holds no packages"),
    ("bad-enum", GOOD.replace("extension_manager: readonly", "extension_manager: writable"), 18,
     '"writable" is not one of'),
    ("bad-module-name", GOOD.replace("  dask:\n", "  da sk:\n").replace("[dask]", "[da sk]"), 7,
     "not a valid name"),
    ("url-requirement", GOOD.replace("dask==2026.*", "dask @ https://example.org/dask.whl"), 9,
     "points at a URL"),
    ("kernel-name", GOOD + "kernels:\n  - name: My Kernel\n", 20, "is not valid"),
    ("npm-without-version", GOOD.replace("      - jupyterlab-git",
                                         "      - jupyterlab-git\n    source_extensions:\n"
                                         "      - jupyterlab-theme-solarized-dark"), 17,
     "names no version"),
    ("npm-range", GOOD.replace("      - jupyterlab-git",
                               "      - jupyterlab-git\n    source_extensions:\n"
                               "      - '@acme/lab-ext@^3.0.0'"), 17, "one exact version"),
    ("env-file-timeout-zero", GOOD + "  singleuser:\n    env_file_timeout: 0\n", 20,
     "0 is out of range: from 1 to 3600"),
    ("env-file-timeout-text", GOOD + "  singleuser:\n    env_file_timeout: soon\n", 20,
     "expected a whole number"),
    ("npm-outside-lab", GOOD.replace("      - dask==2026.*",
                                     "      - dask==2026.*\n    source_extensions: [a@1.0.0]"),
     10, "does not list jupyterlab"),
]


# Hostile input: read within bounds, every name matched whole, bytes that
# are not text named at their line. (id, bytes, line of the error, text)
_BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 10)}]\n" for i in range(8))
HOSTILE = [
    ("alias-bomb", (GOOD + _BOMB).encode(), 19, "more than 100000 values once aliases are expanded"),
    ("recursive-alias", (GOOD + "loop: &loop [1, *loop]\n").encode(), 19, "an alias refers to itself"),
    ("deep-nesting", (GOOD + "deep: " + "[" * 3000 + "]" * 3000 + "\n").encode(), 1,
     "nested deeper than 64 levels"),
    ("too-large", (GOOD + "# " + "x" * (1 << 20) + "\n").encode(), 1, "larger than 1024 KiB"),
    ("not-utf8", GOOD.replace("      - dask==2026.*", "      - dask==2026.* # caf\xe9")
     .encode("latin-1"), 9, "not UTF-8 text (byte 0xe9)"),
    ("newline-in-stack-version", GOOD.replace('version: "1"', 'version: "1\\n"').encode(), 3,
     "is not valid here"),
    ("newline-in-module-name", GOOD.replace("  dask:\n", '  "dask\\n":\n')
     .replace("[dask]", '["dask\\n"]').encode(), 7, "not a valid name"),
    ("newline-in-kernel-name", (GOOD + 'kernels:\n  - name: "k\\n"\n').encode(), 20,
     "is not valid"),
    ("newline-in-kernel-env", (GOOD + 'kernels:\n  - name: k\n    env: {"A\\n": x}\n').encode(),
     21, "kernels[0].env['A\\n']: 'A\\n' is not a valid name"),
    ("duplicate-source-extension", GOOD.replace(
        "      - jupyterlab-git", "      - jupyterlab-git\n    source_extensions:\n"
        "      - jupyterlab-tour@4.0.1\n      - jupyterlab-tour@4.0.0").encode(), 18,
     "source extension 'jupyterlab-tour' is listed twice (also on line 17)"),
]


@pytest.mark.parametrize("document, line, text", [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_hostile_stack_is_refused_within_bounds(tmp_path, document, line, text):
    test_bad_stack_is_one_clear_screen(tmp_path, document, line, text)


@pytest.mark.parametrize("document, line, text", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_stack_is_one_clear_screen(tmp_path, document, line, text):
    path = tmp_path / "stack.yaml"
    path.write_bytes(document if isinstance(document, bytes) else document.encode())
    with pytest.raises(SpecError) as err:
        load_stack(path, display="stack.yaml")
    rendered = err.value.render()
    assert err.value.exit_code == 2
    assert rendered.startswith(f"stack.yaml:{line}:"), rendered
    assert text in rendered, rendered
    assert len(rendered.splitlines()) < 25


def test_at_least_twelve_distinct_cases():
    assert len({b[0] for b in BAD}) >= 12


@pytest.mark.parametrize("document", [BAD[0][1], BAD[5][1], BAD[15][1]],
                         ids=["unknown-key", "bad-specifier", "yaml-tab"])
@pytest.mark.parametrize("command", ["validate", "lock", "check"])
def test_cli_reports_and_writes_nothing(tmp_path, document, command):
    (tmp_path / "stack.yaml").write_text(document)
    lockdir = tmp_path / "lockfiles"
    lockdir.mkdir()
    (lockdir / "demo-1.txt").write_text("# an earlier lock\n")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in lockdir.iterdir()}
    result = run_stackgen(command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("stack.yaml:")
    assert "Traceback" not in result.stderr
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in lockdir.iterdir()}
    assert after == before


def test_defaults_and_order(tmp_path):
    (tmp_path / "stack.yaml").write_text(GOOD)
    stack = load_stack(tmp_path / "stack.yaml")
    assert [m.name for m in stack.modules] == ["dask", "lab"]
    assert stack.module("lab").version == "1"
    assert stack.prefix == tmp_path / "stack"
    assert [p.name for p in stack.module("lab").extensions] == ["jupyterlab-git"]
    assert stack.settings.lab.extension_manager == "readonly"


def test_lock_digest_follows_requirements_only(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(GOOD)
    digest = load_stack(path).lock_digest()
    path.write_text(GOOD.replace("readonly", "pypi") + "kernels: [{name: k}]\n")
    assert load_stack(path).lock_digest() == digest
    path.write_text(GOOD.replace("      - jupyterlab-git", "      - jupyterlab-git\n      - toolz"))
    assert load_stack(path).lock_digest() != digest


def test_source_extensions_are_typed_and_in_the_lock_digest(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(GOOD)
    digest = load_stack(path).lock_digest()
    path.write_text(GOOD.replace("      - jupyterlab-git",
                                 "      - jupyterlab-git\n    source_extensions:\n"
                                 "      - '@acme/lab-theme@1.2.3-rc.1'"))
    stack = load_stack(path)
    (pin,) = stack.module("lab").source_extensions
    assert (pin.name, pin.version, pin.module) == ("@acme/lab-theme", "1.2.3-rc.1", "lab")
    assert stack.lock_digest() != digest
