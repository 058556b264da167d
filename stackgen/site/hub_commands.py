"""`stackgen hub-config`: the hub's configuration files from stack.yaml and the lock."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from stackgen.common.errors import InputError
from stackgen.common.ui import emit_json
from stackgen.site import hubconfig, lockfile
from stackgen.site.spec import load_stack


def hub_config(args: Namespace) -> int:
    stack = load_stack(args.spec)
    hub = hubconfig.hub_of(stack)
    lock = lockfile.read(stack.lock_path, stack.lock_path.name)
    if lock is None:
        raise InputError(f"no lock yet: lockfiles/{stack.lock_name} is missing",
                         "run `stackgen lock`: the hub's version is checked against the lock")
    hubconfig.check_versions(stack, lock)
    prefix = Path(args.prefix).absolute() if args.prefix else stack.prefix
    folder = Path(args.output).absolute()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a folder", "name a folder for the hub's files with -o DIR")
    folder.mkdir(parents=True, exist_ok=True)
    launcher = hubconfig.launcher(hubconfig.lab_module(stack, lock), prefix)
    written, kept = hubconfig.write(hubconfig.render(stack, lock, launcher, folder), folder)
    missing = not launcher.exists()
    if args.json:
        emit_json({"folder": str(folder), "written": written, "kept": kept,
                   "config": str(folder / hubconfig.SITE_CONFIG),
                   "jupyterhub": hub.jupyterhub, "launcher": str(launcher),
                   "launcher_present": not missing})
        return 0
    print(f"{folder}: wrote {', '.join(written)}"
          + (f"; kept the site's own {', '.join(kept)}" if kept else ""))
    if missing:
        print(f"warning: {launcher} is not there yet: build the stack into {prefix} "
              "(stackgen build --prefix) before users spawn", file=sys.stderr)
    print(f"Set up the hub:\n  {lock.hub.venv_python} -m venv {folder}/env && {folder}/env/bin/pip install "
          f"--no-deps --require-hashes -r {folder}/{hubconfig.REQUIREMENTS}\n"
          f"  (cd {folder} && npm install)\n"
          f"  {folder}/env/bin/jupyterhub -f {folder}/{hubconfig.SITE_CONFIG}")
    return 0
