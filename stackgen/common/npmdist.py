"""One npm package version as the registry describes it: its version, its
tarball's address and sha512 integrity. Asked by the lock for every package
a source extension's build installs, and by a user's overlay for the
extension it adds."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from stackgen.common.errors import StackgenError

REGISTRY = "https://registry.npmjs.org"
# A lock asks the registry for hundreds of versions: one lost DNS answer or
# reset connection must not fail it. Pauses before the 2nd and 3rd try.
RETRY_PAUSES = (1.0, 4.0)


@dataclass(frozen=True)
class Dist:
    name: str
    version: str
    integrity: str            # "sha512-<base64>"
    url: str
    meta: dict                # the version's package.json, as the registry has it


def dist(name: str, version: str = "latest", registry: str = REGISTRY) -> Dist:
    """`name` at `version` (or a dist-tag such as "latest") on `registry`."""
    url = f"{registry}/{urllib.parse.quote(name, safe='@')}/{urllib.parse.quote(version)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   "User-Agent": "stackgen"})
    try:
        meta = _get_json(request)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise StackgenError(f"npm package {name}@{version} does not exist on {registry}",
                                "check the name and version on the npm registry") from None
        raise StackgenError(f"asking {registry} for {name}@{version} failed: {exc}",
                            "check the network and run the command again") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StackgenError(f"asking {registry} for {name}@{version} failed: {exc}",
                            "check the network and run the command again") from None
    found = meta.get("dist", {}) if isinstance(meta, dict) else {}
    if not found.get("tarball") or not str(found.get("integrity", "")).startswith("sha512-"):
        raise StackgenError(f"{registry} gives no tarball with a sha512 integrity for {name}@{version}",
                            "choose another version")
    return Dist(name, str(meta.get("version", version)), found["integrity"], found["tarball"], meta)


def _transient(exc: Exception) -> bool:
    """A failure worth asking again: the network's, or the registry's own (5xx, 429)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError))


def _get_json(request: urllib.request.Request):
    """The JSON the registry answers `request` with, asked again after a
    transient failure (RETRY_PAUSES); the last failure is raised."""
    for pause in (*RETRY_PAUSES, None):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if pause is None or not _transient(exc):
                raise
            time.sleep(pause)
