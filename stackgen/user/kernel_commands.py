"""`stackgen user-overlay venv create` and `... kernel add|list|remove`: a
user's own Python environments on the stack, each with a kernel whose
launcher loads the stack (and any further modules), sets the kernel's
variables and runs ipykernel from the environment.

Kernels go to the user's Jupyter data folder (`$JUPYTER_DATA_DIR`, else
`~/.local/share/jupyter`), under kernels/<name>, written whole in a folder
beside and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

from stackgen.common import kernels
from stackgen.common.errors import CommandError, InputError
from stackgen.common.fsutil import write_atomic
from stackgen.common.layout import data_home
from stackgen.common.run import clean_env, run
from stackgen.common.ui import emit_json, progress
from stackgen.user.overlay import Central, outside_overlays

LMOD_INIT_FALLBACK = "/usr/share/lmod/lmod/init/bash"


def kernels_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ if env is None else env)
    if env.get("JUPYTER_DATA_DIR"):
        return Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    return data_home(env) / "jupyter" / "kernels"


def _lmod_init() -> str:
    pkg = os.environ.get("LMOD_PKG")
    return str(Path(pkg) / "init" / "bash") if pkg else LMOD_INIT_FALLBACK


def stack_sites() -> list[str]:
    """The site-packages folders this Python sees, the user's overlays and
    stackgen's own code left out: what a new venv must see of the stack."""
    return [p for p in outside_overlays(sys.path)
            if p.endswith("site-packages") and Path(p).is_dir()]


def venv_create(args: Namespace) -> int:
    central = Central.from_environment()
    path = Path(args.path).expanduser().absolute()
    if path.exists() and any(path.iterdir()):
        raise InputError(f"{path} exists and is not empty", "choose a new folder")
    name = args.name or path.name
    spec = _spec(central, name, args.display_name or f"Python ({name})", str(path), [], ())
    _refuse_to_replace(spec.name, force=False)
    progress(f"making a virtual environment on the stack's Python: {path}")
    made = not path.exists()
    try:
        run([sys.executable, "-m", "venv", str(path)], env=clean_env(),
            describe="python -m venv")
        (site,) = list(path.glob("lib/python*/site-packages"))
        # the stack's packages after the venv's own, visible even without the module
        write_atomic(site / "_stackgen_stack.pth", "".join(f"{p}\n" for p in stack_sites()))
        folder = _write_kernel(spec)
    except BaseException:          # all or nothing: no venv without its kernel
        if made:
            shutil.rmtree(path, ignore_errors=True)
        else:
            _empty(path)
        raise
    print(f"{path}: a virtual environment seeing the stack {central.stack} {central.version}\n"
          f"  kernel {spec.name} ({spec.display_name}) in {folder}\n"
          f"  add packages with: {path}/bin/python -m pip install NAME")
    return 0


def kernel_add(args: Namespace) -> int:
    central = Central.from_environment()
    venv = Path(args.venv).expanduser().absolute() if args.venv else None
    if venv is not None:
        python = venv / "bin" / "python"
        if not python.exists():
            raise InputError(f"{venv} is not a virtual environment (no bin/python)",
                             "make one with `stackgen user-overlay venv create PATH`")
        _ensure_ipykernel(python, args.install_ipykernel)
    spec = _spec(central, args.name, args.display_name or args.name, str(venv or ""),
                 args.module, kernels.parse_env(args.env))
    _refuse_to_replace(spec.name, force=args.force)
    folder = _write_kernel(spec)
    print(f"kernel {spec.name} ({spec.display_name}) in {folder}")
    return 0


def _spec(central: Central, name: str, display: str, venv: str, modules: list[str],
          env: tuple) -> kernels.KernelSpec:
    return kernels.KernelSpec(
        name=kernels.slug(name), display_name=kernels.display_name(display),
        stack_module=central.module, modulepath=str(central.modulepath),
        lmod_init=_lmod_init(), modules=tuple(modules), env=env, venv=venv,
        metadata=(("stack", central.stack), ("version", central.version),
                  ("bundle", central.bundle), ("venv", venv)))


def _made_by_stackgen(folder: Path) -> dict | None:
    """The stackgen metadata of the kernel in `folder`, or None when stackgen
    did not make it (or there is none)."""
    try:
        data = json.loads((folder / "kernel.json").read_text())
    except (OSError, ValueError):
        return None
    meta = data.get("metadata", {}).get("stackgen") if isinstance(data, dict) else None
    return meta if isinstance(meta, dict) else None


def _refuse_to_replace(name: str, force: bool) -> None:
    """A kernel of that name that stackgen did not make is never replaced;
    one of the user's made by stackgen only with --force."""
    folder = kernels_dir() / name
    if not folder.exists():
        return
    meta = _made_by_stackgen(folder)
    if meta is None:
        raise InputError(f"{folder} holds a kernel stackgen did not make; it is left as it is",
                         "choose another name, or remove that folder yourself")
    if not force:
        raise InputError(f"you already have a kernel {name} ({folder})",
                         "pass --force to replace it, or choose another name")


def _empty(path: Path) -> None:
    for child in path.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _ensure_ipykernel(python: Path, install: bool) -> None:
    try:
        run([str(python), "-c", "import ipykernel"], describe="checking ipykernel")
        return
    except CommandError:
        pass
    if not install and sys.stdin.isatty():
        answer = input(f"{python.parent.parent} has no ipykernel; install it there? [y/N] ")
        install = answer.strip().lower() in ("y", "yes")
    if not install:
        raise InputError(f"{python.parent.parent} cannot import ipykernel",
                         "pass --install-ipykernel to install it there, or use a venv made "
                         "with `stackgen user-overlay venv create`, which sees the stack's")
    run([str(python), "-m", "pip", "install", "--quiet", "ipykernel"], env=clean_env(),
        describe="installing ipykernel into the venv")


def _write_kernel(spec: kernels.KernelSpec) -> Path:
    root = kernels_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / spec.name
    scratch = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=root))
    try:
        write_atomic(scratch / "kernel.json", kernels.kernel_json(spec, str(final)))
        write_atomic(scratch / kernels.LAUNCHER, kernels.launcher_text(spec), mode=0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _stackgen_kernels() -> list[tuple[Path, dict]]:
    root = kernels_dir()
    found = []
    for spec in sorted(root.glob("*/kernel.json")) if root.is_dir() else []:
        try:
            data = json.loads(spec.read_text())
        except (OSError, ValueError):
            continue
        if "stackgen" in data.get("metadata", {}):
            found.append((spec.parent, data))
    return found


def kernel_list(args: Namespace) -> int:
    central = Central.from_environment()
    rows = []
    for folder, data in _stackgen_kernels():
        meta = data["metadata"]["stackgen"]
        stale = (meta.get("stack"), meta.get("version"), meta.get("bundle")) != \
            (central.stack, central.version, central.bundle)
        venv = meta.get("venv", "")
        rows.append({"name": folder.name, "display_name": data.get("display_name", ""),
                     "venv": venv, "made_on": f"{meta.get('stack')} {meta.get('version')}",
                     "stale": stale, "venv_missing": bool(venv) and not Path(venv).is_dir()})
    if args.json:
        emit_json({"kernels": rows})
        return 0
    if not rows:
        print("no kernels made by stackgen; `stackgen user-overlay kernel add NAME --venv PATH`")
    for row in rows:
        notes = []
        if row["stale"]:
            notes.append(f"made on {row['made_on']}, not this stack: `kernel add` it again")
        if row["venv_missing"]:
            notes.append("its venv is gone")
        note = f"  ({'; '.join(notes)})" if notes else ""
        print(f"{row['name']}: {row['display_name']}{' ' + row['venv'] if row['venv'] else ''}"
              f"{note}")
    return 0


def kernel_remove(args: Namespace) -> int:
    name = kernels.slug(args.name)
    folder = kernels_dir() / name
    meta = _made_by_stackgen(folder)
    if meta is None:
        site = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
                if p and _made_by_stackgen(Path(p) / "kernels" / name)]
        if site:
            raise InputError(f"{name} is a kernel of the site ({Path(site[0]) / 'kernels' / name}),"
                             " not yours: it cannot be removed",
                             "hide it from your launcher with a kernel of your own of that name")
        raise InputError(f"no kernel {name} made by stackgen in {kernels_dir()}",
                         "`stackgen user-overlay kernel list` shows them")
    shutil.rmtree(folder)
    print(f"removed kernel {name}")
    return 0
