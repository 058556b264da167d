"""A user's own lab extension: stackgen's overlay on the central bundle
against the private JupyterLab a user would otherwise make, side by side in
one run, as an unprivileged user (made with useradd when missing).

Both start from empty caches and install the same extension for the same user:

- prebuilt (default, EXTENSION from PyPI, default jupyterlab-execute-time):
  the overlay with `stackgen user-overlay add EXTENSION` after `module load
  jupyterlab`; the private venv with `python -m venv` from the same base
  Python and `pip install jupyterlab==<the central version> EXTENSION`;
- --source NPM@VERSION (an npm package with no prebuilt form, e.g.
  @jupyter-widgets/jupyterlab-manager@5.0.16): the overlay with `stackgen
  user-overlay add --source NPM@VERSION` (built as a prebuilt extension
  against the central JupyterLab's core, into the overlay); the private venv
  with `pip install jupyterlab==<the central version>`, then the extension
  built there the same way (jlpm installs its dependencies from the npm
  registry with the same node, its own @jupyterlab/builder builds it against
  the venv's JupyterLab core, into the venv's share/jupyter/labextensions; this
  JupyterLab's `jupyter labextension build` cannot run here: it fetches
  @jupyterlab/core-meta from GitHub).

Prints disk use, file count and wall time of each, and the overlay's share
of the venv's.

    .venv/bin/python bench/overlay.py --prefix stack [--extension NAME | --source NPM@VERSION]

PREFIX is a built stack (`stackgen build --prefix PREFIX`), readable by users.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackgen.common import layout  # noqa: E402
from stackgen.user.overlay import disk_usage  # noqa: E402

USER = "stackgen-bench"

# run by the private venv's python: the extension built into the venv with
# stackgen's user-side recipe (from the module's copy of it) and the same
# node as the overlay's (the pinned one, fetched into the work folder)
VENV_SOURCE_BUILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from stackgen.common.node import node_folder
from stackgen.user.overlay_install import build_source, source_extension
labextensions = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
work = Path(sys.argv[3])
node = node_folder(work / "node", install=True)
print(build_source([source_extension(sys.argv[2])], labextensions, node, work, print))
"""


def unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
        return pwd.getpwnam(USER)


def as_user(script: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """`script` in the user's login shell with `env` exported first; its wall time."""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in sorted(env.items()))
    start = time.perf_counter()
    done = subprocess.run(["runuser", "-l", USER, "-c", exports + script],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"failed: {script}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", type=Path, required=True, help="a built stack")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--extension", default="jupyterlab-execute-time", help="a PyPI package")
    what.add_argument("--source", metavar="NPM@VERSION", help="an npm source extension")
    args = parser.parse_args()
    prefix = args.prefix.absolute()
    load = f"module use {shlex.quote(str(prefix / 'modules' / 'all'))} && module load jupyterlab"
    user = unprivileged_user()
    tmp = Path(tempfile.mkdtemp(prefix="bench-overlay-", dir="/tmp"))
    try:
        os.chown(tmp, user.pw_uid, user.pw_gid)
        env = {"XDG_DATA_HOME": str(tmp / "data"), "XDG_CACHE_HOME": str(tmp / "cache"),
               "PIP_CONFIG_FILE": os.devnull}
        ext = shlex.quote(args.source or args.extension)
        add = f"stackgen user-overlay add --source {ext}" if args.source else \
            f"stackgen user-overlay add {ext}"
        t_overlay, _ = as_user(f"{load} && {add}", env)
        overlay = next((tmp / "data" / "stackgen" / "overlays").glob("*/*/manifest.json")).parent
        _, seen = as_user(f"{load} && echo $EBROOTJUPYTERLAB && python -c 'import jupyterlab; "
                          "print(jupyterlab.__version__)'", env)
        root, lab = seen.stdout.split()[-2:]
        venv = shlex.quote(str(tmp / "venv"))
        private = (f"{load} && module unload jupyterlab && python3 -m venv {venv} && "
                   f"{venv}/bin/pip install -q --index-url https://pypi.org/simple jupyterlab=={lab}")
        if args.source:
            user_code = Path(root).joinpath(*layout.USER_CODE)
            private += (f" && {venv}/bin/python -c {shlex.quote(VENV_SOURCE_BUILD)} "
                        f"{shlex.quote(str(user_code))} {ext} {shlex.quote(str(tmp / 'venv-work'))}")
        else:
            private += f" {ext}"
        t_venv, _ = as_user(private, dict(env, XDG_CACHE_HOME=str(tmp / "cache-venv")))
        o_size, o_files = disk_usage(overlay)
        v_size, v_files = disk_usage(tmp / "venv")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    how = "built from npm (--source)" if args.source else "from PyPI"
    print(f"{args.source or args.extension} for one user ({USER}), {how}, on JupyterLab {lab}")
    print(f"{'':22}{'disk':>12}{'files':>10}{'time':>10}")
    print(f"{'stackgen overlay':22}{o_size / 1e6:>10.2f}MB{o_files:>10}{t_overlay:>9.1f}s")
    print(f"{'private venv':22}{v_size / 1e6:>10.2f}MB{v_files:>10}{t_venv:>9.1f}s")
    print(f"{'overlay / venv':22}{o_size / v_size:>11.2%}{o_files / v_files:>10.2%}"
          f"{t_overlay / t_venv:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
