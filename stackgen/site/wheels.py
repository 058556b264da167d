"""What a wheel says about itself: the top-level names it installs."""

from __future__ import annotations

import zipfile
from pathlib import Path


def top_level_names(path: Path) -> tuple[str, ...]:
    """Importable top-level names in a wheel, from its own file list."""
    if not path.name.endswith(".whl"):
        return ()
    names: set[str] = set()
    with zipfile.ZipFile(path) as whl:
        members = whl.namelist()
        for member in members:
            if member.endswith("top_level.txt") and member.count("/") == 1 \
                    and member.split("/")[0].endswith(".dist-info"):
                listed = whl.read(member).decode().split()
                if listed:
                    return tuple(sorted(n.replace("/", ".") for n in listed if n.isidentifier()))
        for member in members:
            first, _, rest = member.partition("/")
            if first.endswith((".dist-info", ".data")):
                continue
            if not rest:                                  # a module at the top
                stem, dot, suffix = first.partition(".")
                if dot and (suffix == "py" or suffix.endswith("so")) and stem.isidentifier():
                    names.add(stem)
            elif first.isidentifier():
                names.add(first)
    return tuple(sorted(names))
