"""Source-only lab extensions: npm packages pinned in stack.yaml, locked with
the tarball's address and integrity and the whole npm tree yarn resolved for
their build (each tarball's address and integrity, and yarn's own yarn.lock),
built as prebuilt extensions (stackgen.common.labbuild).

Parsing a pin and reading a yarn.lock are pure; asking the npm registry is
the one network edge.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stackgen.common import npmdist
from stackgen.common.errors import StackgenError
from stackgen.common.npmdist import REGISTRY

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


def tarball_file(name: str, version: str) -> str:
    """An npm tarball's name in the wheelhouse (a scope becomes a prefix)."""
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


@dataclass(frozen=True)
class NpmTarball:
    """One npm package of a source extension's build, as the lock records it."""

    name: str
    version: str
    integrity: str            # "sha512-<base64>", as npm records it
    url: str

    @property
    def file(self) -> str:
        return tarball_file(self.name, self.version)

    @property
    def text(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class LockedNpm:
    """A source extension in the lock: where its tarball is and what it
    holds, and what its build installs: every npm package yarn resolved
    (`tree`) and yarn's own record of that resolution (`yarn_lock`)."""

    module: str
    name: str
    version: str
    integrity: str            # "sha512-<base64>", as npm records it
    url: str
    tree: tuple[NpmTarball, ...] = ()
    yarn_lock: str = ""

    @property
    def text(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def file(self) -> str:
        """The tarball's name in the wheelhouse (a scope becomes a prefix)."""
        return tarball_file(self.name, self.version)

    @property
    def yarn_lock_file(self) -> str:
        """The yarn.lock's name beside the lock and in the wheelhouse."""
        return f"{self.file[:-len('.tgz')]}.yarn.lock"

    @property
    def yarn_lock_sha256(self) -> str:
        return "sha256:" + hashlib.sha256(self.yarn_lock.encode()).hexdigest()

    @property
    def wheelhouse_yarn_lock_file(self) -> str:
        """The yarn.lock's name in the wheelhouse, which stacks and checkouts
        share: named by its digest too, so a stack whose lock resolved the
        same extension version to another tree never overwrites it."""
        return f"{self.file[:-len('.tgz')]}.{self.yarn_lock_sha256[len('sha256:'):][:16]}.yarn.lock"


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
    found = npmdist.dist(pin.name, pin.version, registry)
    _require_lab_extension(pin, found.meta)
    return LockedNpm(pin.module, pin.name, pin.version, found.integrity, found.url)


# a yarn.lock entry's resolution: an npm package, the project itself, or a
# patch yarn applies by itself (of an npm package the lock also holds)
_NPM_RESOLUTION = re.compile(rf"^({_NAME})@npm:({_VERSION})$")
_RESOLUTION = re.compile(r'^  resolution: "(.*)"$', re.M)


def yarn_lock_packages(text: str) -> list[tuple[str, str]]:
    """(name, version) of every npm package a yarn.lock resolved, sorted;
    ValueError naming an entry that is neither an npm package, the project's
    own workspace nor one of yarn's built-in patches (a git or file
    dependency cannot be locked by integrity)."""
    found = set()
    for resolution in _RESOLUTION.findall(text):
        match = _NPM_RESOLUTION.match(resolution)
        if match:
            found.add((match.group(1), match.group(2)))
        elif "@workspace:" in resolution or "builtin<compat/" in resolution:
            continue
        else:
            raise ValueError(f"yarn resolved {resolution!r}, which is not an npm registry package")
    return sorted(found)


def tarball_dist(name: str, version: str, registry: str = REGISTRY) -> NpmTarball:
    """The registry's address and sha512 integrity of one package version."""
    found = npmdist.dist(name, version, registry)
    return NpmTarball(name, version, found.integrity, found.url)


def tarball_dists(packages: list[tuple[str, str]], known: dict[str, NpmTarball],
                  registry: str = REGISTRY) -> list[NpmTarball]:
    """Each (name, version) with its address and integrity: from `known`
    ("name@version" -> NpmTarball) or else asked of the registry, 16 at a time."""
    ask = [p for p in packages if f"{p[0]}@{p[1]}" not in known]
    with ThreadPoolExecutor(16) as pool:
        for found in pool.map(lambda p: tarball_dist(*p, registry=registry), ask):
            known[found.text] = found
    return [known[f"{name}@{version}"] for name, version in packages]


def _require_lab_extension(pin: NpmPin, meta: dict) -> None:
    lab = meta.get("jupyterlab")
    if not isinstance(lab, dict) or not (lab.get("extension") or lab.get("mimeExtension")):
        raise StackgenError(f"npm package {pin.text} (module {pin.module}) is not a JupyterLab "
                            "extension: its package.json has no jupyterlab.extension",
                            "source_extensions are npm packages of lab extensions; a Python "
                            "package carrying a prebuilt extension goes under extensions:")
