"""Where things are: in a prefix, in a module's install, and in a user's
overlay. The one place that knows, for the Python of both sides and, handed
over as template variables, for the Lua footer of the modules.

Paths are tuples of parts, so Python joins them with `/` and Lua with
`pathJoin(root, ...)`; none of them is absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

# In a prefix: PREFIX/software/NAME/VERSION and PREFIX/modules/all/NAME/VERSION.lua
SOFTWARE = ("software",)
MODULEPATH = ("modules", "all")
# from a module's install back up to the software folder, and to its prefix
INSTALL_TO_SOFTWARE = ("..", "..")
INSTALL_TO_PREFIX = (*INSTALL_TO_SOFTWARE, "..")

# In a module's install
BIN = ("bin",)
JUPYTER_DATA = ("share", "jupyter")
JUPYTER_CONFIG = ("etc", "jupyter")
SERVER_CONFIG_D = (*JUPYTER_CONFIG, "jupyter_server_config.d")
LAB_APP_DIR = (*JUPYTER_DATA, "lab")
LAB_SETTINGS = (*LAB_APP_DIR, "settings")
KERNELS = (*JUPYTER_DATA, "kernels")
DASK_CONFIG = ("etc", "dask")
JUPYTER_ENV = ("python",)                 # the venv that is Jupyter's sys-prefix level
USER_CODE = ("libexec", "stackgen")       # the user side of stackgen, copied in
EASYCONFIG_DIGEST = ("share", "stackgen", "easyconfig-digest")
BASE_MODULEPATH = ("share", "stackgen", "base-modulepath")   # where its module file finds the base
PARALLEL_DEFAULTS = ("share", "stackgen", "parallel.json")   # stack.yaml's parallel section

# In a user's data home ($XDG_DATA_HOME or ~/.local/share)
OVERLAYS = ("stackgen", "overlays")       # then STACK/VERSION
# In an overlay
OVERLAY_MANIFEST = "manifest.json"
OVERLAY_BUNDLE = "stackgen-bundle"        # one line: the central digest; read by the module
OVERLAY_LATEST = "latest"                 # per stack: the version of the newest overlay


def rel(parts: tuple[str, ...]) -> str:
    """`parts` as a relative path with `/`: how easyconfigs name files."""
    return "/".join(parts)


def install_dir(prefix: Path, name: str, version: str) -> Path:
    return Path(prefix).joinpath(*SOFTWARE, name, version)


def module_file(prefix: Path, name: str, version: str) -> Path:
    return Path(prefix).joinpath(*MODULEPATH, name, f"{version}.lua")


def modulepath_of(install: str | os.PathLike) -> Path:
    """PREFIX/modules/all for the install PREFIX/software/NAME/VERSION."""
    return Path(os.path.normpath(Path(install).joinpath(*INSTALL_TO_PREFIX, *MODULEPATH)))


def site_packages(python_version: str) -> tuple[str, ...]:
    """Where a prefix's packages go for Python "X.Y"."""
    return ("lib", f"python{python_version}", "site-packages")


def data_home(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ if env is None else env)
    return Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME", "~")).expanduser()
                / ".local" / "share")


def overlays_root(env: dict[str, str] | None = None) -> Path:
    """Where every overlay of this user lives."""
    return data_home(env).joinpath(*OVERLAYS)


def footer_paths(python_version: str) -> dict[str, tuple[str, ...]]:
    """The paths the Lua footer joins, by the names the template uses."""
    return {"bin": BIN, "jupyter_data": JUPYTER_DATA, "jupyter_config": JUPYTER_CONFIG,
            "lab_app_dir": LAB_APP_DIR, "jupyter_env_bin": (*JUPYTER_ENV, *BIN),
            "dask_config": DASK_CONFIG, "easyconfig_digest": EASYCONFIG_DIGEST,
            "parallel_defaults": PARALLEL_DEFAULTS,
            "install_to_software": INSTALL_TO_SOFTWARE,
            "install_to_prefix": INSTALL_TO_PREFIX, "modulepath": MODULEPATH,
            "overlays": OVERLAYS, "overlay_bundle": (OVERLAY_BUNDLE,),
            "overlay_latest": (OVERLAY_LATEST,),
            "overlay_site_packages": site_packages(python_version)}
