"""What StackgenBundle writes into an install besides the packages, as pure
parts testable without EasyBuild: the site's files, the digest of the
easyconfig a module was built from, the user side of stackgen copied into
the jupyterlab module, and the launchers: site kernels, the single-user
server's and the user command's."""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass

from stackgen.common import kernels, layout
from stackgen.common.templating import environment


def site_file_path(installdir, relpath):
    """Absolute path of `relpath` inside `installdir`; refuses paths leaving it."""
    if os.path.isabs(relpath):
        raise ValueError(f"site_json_files: {relpath} must be relative to the install dir")
    root = os.path.realpath(installdir)
    path = os.path.realpath(os.path.join(root, relpath))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"site_json_files: {relpath} leaves the install dir")
    return path


def site_file_text(data):
    """The bytes written for one site file: stable, sorted, newline-terminated."""
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def easyconfig_digest(path):
    """What the module was built from, as the jupyterlab module's bundle reads it."""
    with open(path, 'rb') as fh:
        return 'sha256:' + hashlib.sha256(fh.read()).hexdigest()[:16]


# What of the stackgen package runs in the jupyterlab module, for users:
# everything but the site side (stackgen/site), which only the build host runs:
# the user side and the session side (what runs in a user's job).
USER_SIDE = ("__init__.py", "common", "session", "templates", "user")


def copy_user_side(package_dir, target):
    """Copy the user side of the stackgen package at `package_dir` into
    `target` (a new folder named stackgen), without bytecode."""
    os.makedirs(target)
    for entry in USER_SIDE:
        source = os.path.join(package_dir, entry)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, entry),
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy2(source, os.path.join(target, entry))


def user_side_digest(package_dir):
    """What of the user side of the stackgen package at `package_dir` runs in
    an install: a digest of its files' paths and bytes, bytecode left out, so
    the copy in an install compares with the stackgen that would build it now."""
    digest = hashlib.sha256()
    for entry in USER_SIDE:
        top = os.path.join(package_dir, entry)
        files = [top] if os.path.isfile(top) else sorted(
            os.path.join(folder, name)
            for folder, dirs, names in os.walk(top)
            if '__pycache__' not in folder.split(os.sep)
            for name in names if not name.endswith('.pyc'))
        for path in files:
            digest.update(os.path.relpath(path, package_dir).encode() + b'\0')
            with open(path, 'rb') as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Place:
    """Where a launcher finds the stack: the folder of its module files, the
    module itself ("name/version"), Lmod's bash init, for a shell that has no
    `module` yet, and the install as users will see it (EasyBuild builds it
    in a staging folder first)."""

    modulepath: str
    module: str
    lmod_init: str
    install: str


def site_kernel_files(kernel, installdir, place):
    """(path, text, mode) of the kernel.json and launcher of one site kernel
    (a dict of the easyconfig's site_kernels), written in `installdir` and
    naming the launcher where the install will be."""
    folder = os.path.join(installdir, *layout.KERNELS, kernel['name'])
    final = os.path.join(place.install, *layout.KERNELS, kernel['name'])
    spec = kernels.KernelSpec(
        name=kernel['name'], display_name=kernel.get('display_name') or kernel['name'],
        stack_module=place.module, modulepath=place.modulepath, lmod_init=place.lmod_init,
        modules=tuple(kernel.get('modules', ())), env=tuple(sorted(kernel.get('env', {}).items())),
        metadata=(('site', 'true'),))
    return [(os.path.join(folder, 'kernel.json'), kernels.kernel_json(spec, final), 0o644),
            (os.path.join(folder, kernels.LAUNCHER), kernels.launcher_text(spec), 0o755)]


def singleuser_launcher(installdir, place, env_timeout=30):
    """(path, text, mode) of bin/stackgen-singleuser, what a spawner runs;
    a user's ~/.jupyterhub.env may run `env_timeout` seconds."""
    text = environment().get_template('singleuser.sh.j2').render(
        modulepath=place.modulepath, stack_module=place.module, lmod_init=place.lmod_init,
        env_timeout=int(env_timeout))
    return os.path.join(installdir, *layout.BIN, 'stackgen-singleuser'), text, 0o755


def user_launcher(installdir):
    """(path, text, mode) of bin/stackgen, the user side's command."""
    text = environment().get_template('stackgen-user.sh.j2').render(
        user_code=layout.rel(layout.USER_CODE),
        python=layout.rel((*layout.JUPYTER_ENV, *layout.BIN, 'python3')))
    return os.path.join(installdir, *layout.BIN, 'stackgen'), text, 0o755


def base_modulepath_lua(base_module, modulepath):
    """The module-file lines that find the base where the build found it
    (stack.yaml's base.modulepath, ":"-joined), before it is loaded; none
    when the base is on the system's modulepath."""
    paths = [p for p in modulepath.split(os.pathsep) if p]
    if not paths:
        return ""
    return environment().get_template("base_modulepath.lua.j2").render(
        base=base_module, family=base_module.split("/")[0], paths=paths)


def jupyter_env_files(env_dir, pylib, version, module):
    """(path, text, mode) of what binds the jupyterlab module's python (a venv
    made by the base at build time) to the base loaded at run time: its
    bin/pythonX.Y runs the loaded base's interpreter, and a .pth file adds
    that base's site dirs. `pylib` is the venv's site-packages."""
    python = environment().get_template("jupyter_env_python.sh.j2").render(
        version=version, module=module)
    base = environment().get_template("jupyter_env_base.py.j2").render()
    return [(os.path.join(env_dir, *layout.BIN, "python" + version), python, 0o755),
            (os.path.join(pylib, "_stackgen_base.py"), base, 0o644),
            (os.path.join(pylib, "_stackgen_base.pth"), "import _stackgen_base\n", 0o644)]
