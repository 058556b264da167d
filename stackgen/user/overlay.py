"""A user's overlay on the central bundle: where it lives, what it holds
(its manifest), which central bundle it was made on, and how it is replaced
as a whole (made in a temporary folder, then swapped in, under a file lock).

The central bundle describes itself to the user side through the variables
the jupyterlab module sets (Central.VARIABLES).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from stackgen.common import layout
from stackgen.common.errors import InputError
from stackgen.common.fsutil import drop_leftover_temps, write_atomic
from stackgen.common.layout import OVERLAY_BUNDLE as BUNDLE_FILE
from stackgen.common.layout import OVERLAY_LATEST as LATEST_FILE
from stackgen.common.layout import OVERLAY_MANIFEST as MANIFEST
from stackgen.common.layout import overlays_root

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Central:
    """The central bundle as the loaded jupyterlab module describes it."""

    stack: str
    version: str
    bundle: str                      # digest of the central bundle
    app_dir: Path                    # the central JupyterLab app dir
    python_version: str              # "3.11"
    module: str = ""                 # the lab module, "name/version", as stack.yaml names it
    modulepath: Path = Path()        # the folder of the stack's module files

    # what the module sets, for each field
    VARIABLES = {"stack": "STACKGEN_STACK", "version": "STACKGEN_STACK_VERSION",
                 "bundle": "STACKGEN_BUNDLE", "app_dir": "STACKGEN_APP_DIR",
                 "python_version": "STACKGEN_PYTHON_VERSION", "module": "STACKGEN_MODULE",
                 "modulepath": "STACKGEN_MODULEPATH"}

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Central:
        env = dict(os.environ if env is None else env)
        missing = [var for var in cls.VARIABLES.values() if not env.get(var)]
        if missing:
            raise InputError("no stackgen JupyterLab module is loaded "
                             f"({', '.join(missing)} not set)",
                             "run `module load jupyterlab` first")
        values = {field: env[var] for field, var in cls.VARIABLES.items()}
        values["app_dir"] = Path(values["app_dir"])
        values["modulepath"] = Path(os.path.normpath(values["modulepath"]))
        return cls(**values)


@dataclass(frozen=True)
class Extension:
    """One thing the user asked for: a Python package carrying a prebuilt lab
    extension (`kind` "prebuilt"), or an npm package built from source."""

    requirement: str                 # "jupyterlab-execute-time" or "jupyterlab-tour@4.0.1"
    name: str                        # canonical Python name, or npm name
    kind: str = "prebuilt"
    version: str = ""                # what was installed
    labextensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    stack: str
    version: str
    bundle: str
    extensions: tuple[Extension, ...] = ()
    packages: tuple[tuple[str, str], ...] = ()     # (name, version) installed in the overlay
    format: int = MANIFEST_FORMAT

    def extension(self, name: str) -> Extension | None:
        return next((e for e in self.extensions if e.name == name), None)

    def to_json(self) -> str:
        data = asdict(self)
        data["extensions"] = [asdict(e) for e in self.extensions]
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            fmt = data.get("format")
            if fmt != MANIFEST_FORMAT:
                raise InputError(f"{where}: overlay manifest format {fmt}; this stackgen reads "
                                 f"format {MANIFEST_FORMAT}",
                                 "run `stackgen user-overlay reset` and add your extensions again")
            return cls(stack=data["stack"], version=data["version"], bundle=data["bundle"],
                       extensions=tuple(Extension(e["requirement"], e["name"], e["kind"],
                                                  e.get("version", ""),
                                                  tuple(e.get("labextensions", ())))
                                        for e in data["extensions"]),
                       packages=tuple((n, v) for n, v in data.get("packages", ())))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where}: not a readable overlay manifest ({exc})",
                             "run `stackgen user-overlay reset` and add your extensions again"
                             ) from None


def outside_overlays(paths: list[str], env: dict[str, str] | None = None) -> list[str]:
    """`paths` without the user's own overlays: what is central (and the base)."""
    root = overlays_root(env).resolve()
    return [p for p in paths if p and not Path(p).resolve().is_relative_to(root)]


@dataclass(frozen=True)
class Overlay:
    """The overlay folder of one user for one stack version."""

    root: Path                       # .../stackgen/overlays/<stack>/<version>
    python_version: str = "3.11"

    @classmethod
    def for_central(cls, central: Central, env: dict[str, str] | None = None) -> Overlay:
        return cls(overlays_root(env) / central.stack / central.version, central.python_version)

    @property
    def stack_dir(self) -> Path:
        return self.root.parent

    @property
    def site_packages(self) -> Path:
        return self.root.joinpath(*layout.site_packages(self.python_version))

    def manifest(self) -> Manifest | None:
        path = self.root / MANIFEST
        try:
            return Manifest.from_json(path.read_text(), str(path))
        except FileNotFoundError:
            return None

    def others(self) -> list[Path]:
        """Overlays of other versions of the same stack, newest name last."""
        if not self.stack_dir.is_dir():
            return []
        return sorted(p for p in self.stack_dir.iterdir()
                      if p.is_dir() and p != self.root and not p.name.startswith(".")
                      and (p / MANIFEST).exists())

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One changer at a time: a second `add` waits for the first."""
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stack_dir / f".{self.root.name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._recover()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _recover(self) -> None:
        """Finish or undo a change that was interrupted (nobody else holds the
        lock now). Killed between the two renames of swap_in, the old overlay
        is in an .old- folder and the new one, complete (its manifest and
        bundle marker are written last), in a .new- folder: the swap is
        completed. Killed before, the overlay is still in place and the new
        one is dropped; killed after, only the old one's removal is left."""
        olds = sorted(self.stack_dir.glob(f".{self.root.name}.old-*"))
        news = sorted(self.stack_dir.glob(f".{self.root.name}.new-*"))
        if not self.root.exists():
            complete = [n for n in news if (n / MANIFEST).exists() and (n / BUNDLE_FILE).exists()]
            kept = [o / "overlay" for o in olds if (o / "overlay").is_dir()]
            if complete and kept:
                os.replace(complete[-1], self.root)
                write_atomic(self.stack_dir / LATEST_FILE, self.root.name + "\n")
            elif kept:
                os.replace(kept[-1], self.root)
        for leftover in (*olds, *news):
            shutil.rmtree(leftover, ignore_errors=True)
        drop_leftover_temps(self.stack_dir / LATEST_FILE)

    def scratch(self) -> Path:
        """A new empty folder beside the overlay (same file system, so the
        final rename is atomic)."""
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{self.root.name}.new-", dir=self.stack_dir))

    def swap_in(self, new: Path, manifest: Manifest) -> None:
        """Make `new` the overlay: manifest and bundle marker written last
        inside it, then one rename; the old overlay is removed afterwards."""
        write_atomic(new / MANIFEST, manifest.to_json())
        write_atomic(new / BUNDLE_FILE, manifest.bundle + "\n")
        old = self._move_aside()
        os.replace(new, self.root)
        write_atomic(self.stack_dir / LATEST_FILE, self.root.name + "\n")
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def remove(self) -> None:
        old = self._move_aside()
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def _move_aside(self) -> Path | None:
        """Rename the overlay out of the way (one rename: users see it whole or
        not at all); the folder it went to, for removal, or None."""
        if not self.root.exists():
            return None
        old = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.old-", dir=self.stack_dir))
        os.replace(self.root, old / "overlay")
        return old


def status(overlay: Overlay, central: Central) -> str:
    """"none", "current", "stale" (made on another central bundle), or
    "damaged" (a package or lab extension its manifest lists is gone)."""
    manifest = overlay.manifest()
    if manifest is None:
        return "none"
    if missing_files(overlay, manifest):
        return "damaged"
    return "current" if manifest.bundle == central.bundle else "stale"


def missing_files(overlay: Overlay, manifest: Manifest) -> list[str]:
    """What the manifest lists that is not in the overlay: a package's
    metadata, a lab extension's folder."""
    found = {canonicalize_name(d.name.split("-")[0]) for d in overlay.site_packages.glob("*.dist-info")}
    missing = [f"{name} {version}" for name, version in manifest.packages if name not in found]
    labs = overlay.root.joinpath(*layout.JUPYTER_DATA, "labextensions")
    missing += [lab for ext in manifest.extensions if ext.kind == "prebuilt"
                for lab in ext.labextensions if not (labs / lab).is_dir()]
    return missing


def refuse_central(name: str, central_versions: dict[str, str]) -> None:
    if name in central_versions:
        raise InputError(f"{name} {central_versions[name]} is already part of the central stack",
                         "it is loaded with the module; an overlay never shadows or duplicates "
                         "a central package")


def clean_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def disk_usage(root: Path) -> tuple[int, int]:
    """Bytes and files under `root`, symlinks not followed."""
    size = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                size += path.stat().st_size
                files += 1
    return size, files
