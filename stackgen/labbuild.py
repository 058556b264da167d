"""Building source-only lab extensions into a JupyterLab app dir, the same
way for the central bundle (StackgenBundle, inside EasyBuild) and for a
user's overlay: one environment, the two commands, and what to drop after.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# what the build fetched and its intermediate output under staging/ (static/
# holds the result): about 400 MB that nobody reads afterwards
STAGING_LEFTOVERS = ("node_modules", ".yarn", "build")


def environment(node_bin: str | os.PathLike | None, workdir: Path, path: str,
                yarn_cache: str | os.PathLike | None = None) -> dict[str, str]:
    """Variables for the build, on top of the caller's environment: node first
    on `path` (once); yarn's and npm's caches in `workdir`, or yarn's in a kept
    `yarn_cache` (never ~/.yarn/berry, where yarn 4 would go by itself: a home
    under quota); the system CA store, which node ignores unless told (a
    TLS-inspecting proxy's CA is there, as Python's downloads find it)."""
    if node_bin and not path.startswith(f"{node_bin}{os.pathsep}"):
        path = f"{node_bin}{os.pathsep}{path}"
    return {
        "PATH": path,
        "YARN_CACHE_FOLDER": str(yarn_cache or Path(workdir) / "yarn-cache"),
        "YARN_GLOBAL_FOLDER": str(Path(workdir) / "yarn-global"),
        "YARN_ENABLE_GLOBAL_CACHE": "false",
        "npm_config_cache": str(Path(workdir) / "npm-cache"),
        "NODE_USE_SYSTEM_CA": "1",
    }


def commands(app_dir: str | os.PathLike, specs: list[str]) -> list[list[str]]:
    """`jupyter labextension install` of the npm packages or tarballs into
    `app_dir`, then one production `jupyter lab build` there."""
    app = f"--app-dir={app_dir}"
    return [["jupyter", "labextension", "install", "--no-build", app, *specs],
            ["jupyter", "lab", "build", app, "--dev-build=False", "--minimize=True"]]


def drop_leftovers(app_dir: str | os.PathLike) -> None:
    for leftover in STAGING_LEFTOVERS:
        shutil.rmtree(Path(app_dir) / "staging" / leftover, ignore_errors=True)
