"""Source-only lab extensions: npm packages pinned in stack.yaml, locked with
the tarball's address and integrity, built into the central app dir.

Parsing a pin is pure; asking the npm registry is the one network edge.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.errors import StackgenError

REGISTRY = "https://registry.npmjs.org"

# npm's own rules for a package name, scoped or not, and an exact semver.
_NAME = r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
_VERSION = r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?"
_PIN = re.compile(rf"^({_NAME})@({_VERSION})$")


@dataclass(frozen=True)
class NpmPin:
    """A source extension as stack.yaml names it: exactly one version."""

    name: str
    version: str
    module: str

    @property
    def text(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class LockedNpm:
    """A source extension in the lock: where its tarball is and what it holds."""

    module: str
    name: str
    version: str
    integrity: str            # "sha512-<base64>", as npm records it
    url: str

    @property
    def file(self) -> str:
        """The tarball's name in the wheelhouse (a scope becomes a prefix)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


def parse_pin(text: str, module: str) -> NpmPin:
    """`name@1.2.3` -> NpmPin; ValueError with what is wrong otherwise."""
    match = _PIN.fullmatch(text.strip())
    if not match:
        if "@" not in text.lstrip("@"):
            raise ValueError(f"{text!r} names no version")
        raise ValueError(f"{text!r} is not an npm package name with one exact version")
    return NpmPin(match.group(1), match.group(2), module)


def lock_pin(pin: NpmPin, registry: str = REGISTRY) -> LockedNpm:
    """Ask the registry for the tarball and integrity of exactly `pin`."""
    url = f"{registry}/{urllib.parse.quote(pin.name, safe='@')}/{pin.version}"
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   "User-Agent": "stackgen"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            meta = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise StackgenError(f"npm package {pin.text} (module {pin.module}) does not exist "
                                f"on {registry}",
                                "check the name and version on the npm registry") from None
        raise StackgenError(f"asking {registry} for {pin.text} failed: {exc}",
                            "check the network and run the command again") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StackgenError(f"asking {registry} for {pin.text} failed: {exc}",
                            "check the network and run the command again") from None
    dist = meta.get("dist", {})
    if not dist.get("tarball") or not dist.get("integrity", "").startswith("sha512-"):
        raise StackgenError(f"{registry} gives no tarball with a sha512 integrity for {pin.text}",
                            "choose another version of this extension")
    _require_lab_extension(pin, meta)
    return LockedNpm(pin.module, pin.name, pin.version, dist["integrity"], dist["tarball"])


def missing_core_tarballs(jupyterlab_wheel: Path, version: str,
                          registry: str = REGISTRY) -> list[str]:
    """JupyterLab's own npm packages at `version`, as its staging yarn.lock
    names them, whose tarballs the registry does not serve. A source build
    re-installs every one of them, so any missing one makes it fail."""
    with zipfile.ZipFile(jupyterlab_wheel) as whl:
        text = whl.read("jupyterlab/staging/yarn.lock").decode()
    names = sorted(set(re.findall(rf'resolution: "(@jupyterlab/[a-z0-9._-]+)@npm:{re.escape(version)}"',
                                  text)))

    def missing(name: str) -> bool:
        url = f"{registry}/{name}/-/{name.split('/')[1]}-{version}.tgz"
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "stackgen"})
        try:
            urllib.request.urlopen(request, timeout=60).close()
            return False
        except urllib.error.HTTPError as exc:
            return exc.code == 404
        except (urllib.error.URLError, OSError) as exc:
            raise StackgenError(f"asking {registry} for {name}@{version} failed: {exc}",
                                "check the network and run the command again") from None

    with ThreadPoolExecutor(8) as pool:
        return [f"{n}@{version}" for n, gone in zip(names, pool.map(missing, names)) if gone]


def _require_lab_extension(pin: NpmPin, meta: dict) -> None:
    lab = meta.get("jupyterlab")
    if not isinstance(lab, dict) or not (lab.get("extension") or lab.get("mimeExtension")):
        raise StackgenError(f"npm package {pin.text} (module {pin.module}) is not a JupyterLab "
                            "extension: its package.json has no jupyterlab.extension",
                            "source_extensions are npm packages of lab extensions; a Python "
                            "package carrying a prebuilt extension goes under extensions:")
