"""A user's own lab extension: stackgen's overlay on the central bundle
against the usual private JupyterLab venv, side by side in one run.

Both start from an empty pip cache and install EXTENSION (default
jupyterlab-execute-time) for the same user: the overlay with `stackgen
user-overlay add` after `module load jupyterlab`, the private venv with
`python -m venv` from the same base Python and `pip install jupyterlab==<the
central version> EXTENSION`. Prints disk use, file count and wall time of each,
and the overlay's share of the venv's.

    .venv/bin/python bench/overlay.py --prefix stack [--extension NAME]

PREFIX is a built stack (`stackgen build --prefix PREFIX`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackgen.user.overlay import disk_usage  # noqa: E402


def login_shell(script: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(["bash", "-l", "-c", script], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"failed: {script}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", type=Path, required=True, help="a built stack")
    parser.add_argument("--extension", default="jupyterlab-execute-time")
    args = parser.parse_args()
    modules = shlex.quote(str(args.prefix.absolute() / "modules" / "all"))
    load = f"module use {modules} && module load jupyterlab"
    with tempfile.TemporaryDirectory(prefix="bench-overlay-") as tmp:
        tmp = Path(tmp)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp),
               "XDG_DATA_HOME": str(tmp / "data"), "XDG_CACHE_HOME": str(tmp / "cache"),
               "PIP_CONFIG_FILE": os.devnull}
        ext = shlex.quote(args.extension)
        t_overlay, _ = login_shell(f"{load} && stackgen user-overlay add {ext}", env)
        overlay = next((tmp / "data" / "stackgen" / "overlays").glob("*/*/manifest.json")).parent
        _, version = login_shell(f"{load} && python -c 'import jupyterlab; "
                                 "print(jupyterlab.__version__)'", env)
        lab = version.stdout.strip()
        venv = tmp / "venv"
        env_venv = dict(env, XDG_CACHE_HOME=str(tmp / "cache-venv"))
        t_venv, _ = login_shell(
            f"{load} && module unload jupyterlab && python3 -m venv {shlex.quote(str(venv))} && "
            f"{shlex.quote(str(venv / 'bin' / 'pip'))} install -q --index-url "
            f"https://pypi.org/simple jupyterlab=={lab} {ext}", env_venv)
        o_size, o_files = disk_usage(overlay)
        v_size, v_files = disk_usage(venv)
    print(f"{args.extension} for one user, on JupyterLab {lab}")
    print(f"{'':22}{'disk':>12}{'files':>10}{'time':>10}")
    print(f"{'stackgen overlay':22}{o_size / 1e6:>10.2f}MB{o_files:>10}{t_overlay:>9.1f}s")
    print(f"{'private venv':22}{v_size / 1e6:>10.2f}MB{v_files:>10}{t_venv:>9.1f}s")
    print(f"{'overlay / venv':22}{o_size / v_size:>11.2%}{o_files / v_files:>10.2%}"
          f"{t_overlay / t_venv:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
