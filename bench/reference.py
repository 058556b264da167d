"""What the benches share: the reference stack's lock and its wheels in the
wheelhouse, and the baseline every build and import figure is measured
against: one `pip install --no-deps` of those wheels into one flat prefix,
or the installer call stackgen's easyblock makes (uv) into one prefix."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackgen.common.run import run  # noqa: E402
from stackgen.common.ui import default_cache  # noqa: E402
from stackgen.site import lockfile  # noqa: E402
from stackgen.site.base import Base, load_base  # noqa: E402
from stackgen.site.build import uv_command  # noqa: E402
from stackgen.site.easyblocks.install import installer_argv  # noqa: E402
from stackgen.site.lockfile import Lock  # noqa: E402
from stackgen.site.spec import Stack, load_stack  # noqa: E402

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "stack.yaml"


@dataclass(frozen=True)
class Reference:
    stack: Stack
    base: Base
    lock: Lock
    wheelhouse: Path

    @property
    def wheels(self) -> list[Path]:
        return [self.wheelhouse / p.file for p in self.lock.packages]


def reference(spec: Path = DEFAULT_SPEC) -> Reference:
    stack = load_stack(spec)
    return Reference(stack, load_base(stack.base), lockfile.read(stack.lock_path),
                     default_cache() / "wheelhouse")


def pip_install_flat(ref: Reference, prefix: Path) -> None:
    """The baseline: every locked wheel, one pip call, one prefix."""
    run([str(ref.base.python), "-m", "pip", "install", "--quiet", "--prefix", str(prefix),
         "--no-deps", "--no-index", "--ignore-installed", "--no-build-isolation",
         "--no-cache-dir", "--disable-pip-version-check", *map(str, ref.wheels)],
        env=ref.base.env, describe="one-shot pip install into a flat prefix")


def uv_install_flat(ref: Reference, prefix: Path, cache: Path) -> None:
    """The installer's floor: every locked wheel, one `uv pip install
    --no-deps --compile-bytecode` into one prefix with uv's cache in `cache`,
    exactly the call StackgenBundle makes for a module."""
    uv = uv_command()
    if not uv:
        raise SystemExit("uv is not installed beside stackgen (./bootstrap env)")
    run(installer_argv(str(ref.base.python), str(prefix), list(map(str, ref.wheels)), uv=uv,
                       uv_cache=str(cache)),
        env=ref.base.env, describe="one-shot uv pip install into a flat prefix")
