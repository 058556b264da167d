"""What both locks share of pip's requirements format (lockfile.py, the
stack's; hublock.py, the hub environment's): a pin line, its --hash lines,
and the digest of a package section, which each lock's header records."""

from __future__ import annotations

import hashlib
import re

# `name==version`, then ` \` when --hash lines follow
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)\s*\\?$")


def pin_lines(name: str, version: str, hashes: tuple[str, ...]) -> list[str]:
    """A package's pin and its hashes, sorted, as pip reads them."""
    hashes = tuple(sorted(hashes))
    return ([f"{name}=={version}" + (" \\" if hashes else "")]
            + [f"    --hash={x} \\" for x in hashes[:-1]] + [f"    --hash={x}" for x in hashes[-1:]])


def section_digest(body: str) -> str:
    """The digest a lock's header records of its package section."""
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()
