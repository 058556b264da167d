"""stackgen's easyblock: a PythonBundle that also writes the site's settings
(JupyterLab overrides and page config, server and dask config) into the
install, from JSON-like data declared in the easyconfig, and builds the
stack's source-only lab extensions into JupyterLab's app dir with node.

Handed to EasyBuild with --include-easyblocks; used as
`easyblock = 'StackgenBundle'` in the easyconfigs stackgen renders.
"""

import base64
import hashlib
import json
import os
import shlex
import shutil

from easybuild.easyblocks.generic.pythonbundle import PythonBundle
from easybuild.framework.easyconfig import CUSTOM
from easybuild.tools.build_log import EasyBuildError
from easybuild.tools.environment import setvar
from easybuild.tools.filetools import mkdir, remove_dir, write_file
from easybuild.tools.run import run_shell_cmd


def site_file_path(installdir, relpath):
    """Absolute path of `relpath` inside `installdir`; refuses paths leaving it."""
    if os.path.isabs(relpath):
        raise EasyBuildError("site_json_files: %s must be relative to the install dir", relpath)
    root = os.path.realpath(installdir)
    path = os.path.realpath(os.path.join(root, relpath))
    if os.path.commonpath([root, path]) != root:
        raise EasyBuildError("site_json_files: %s leaves the install dir", relpath)
    return path


def site_file_text(data):
    """The bytes written for one site file: stable, sorted, newline-terminated."""
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


# bin/stackgen in the module: the user side of stackgen, with the module's own
# python3 (the base) and the central packages the module puts on PYTHONPATH.
USER_LAUNCHER = """#!/bin/sh
# stackgen user-overlay: your own lab extensions on top of this JupyterLab.
here=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$here/libexec/stackgen${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m stackgen.usercli "$@"
"""


def integrity_matches(path, integrity):
    """True when the file's digest is npm's `<algorithm>-<base64>` integrity."""
    algorithm, _, expected = integrity.partition('-')
    if algorithm not in ('sha512', 'sha384', 'sha256'):
        return False
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode() == expected


class StackgenBundle(PythonBundle):
    """PythonBundle plus site settings written after installation."""

    @staticmethod
    def extra_options(extra_vars=None):
        extra_vars = PythonBundle.extra_options(extra_vars)
        extra_vars.update({
            'site_json_files': [{}, "Files to write in the install, as {relative path: JSON-like "
                                    "data}: JupyterLab settings, server and dask config", CUSTOM],
            'stackgen_user_command': ['', "stackgen version whose user side (`stackgen "
                                          "user-overlay`) is installed into bin/ and libexec/", CUSTOM],
            'lab_source_extensions': [[], "Source-only lab extensions built into JupyterLab's "
                                          "app dir, as (npm name, version, tarball in the "
                                          "sourcepath, npm integrity)", CUSTOM],
        })
        return extra_vars

    def post_processing_step(self):
        """Write the site files and build the source extensions, then whatever
        PythonBundle does."""
        for relpath, data in sorted(self.cfg['site_json_files'].items()):
            path = site_file_path(self.installdir, relpath)
            mkdir(os.path.dirname(path), parents=True)
            write_file(path, site_file_text(data))
            self.log.info("Wrote site file %s", path)
        if self.cfg['lab_source_extensions']:
            self.build_source_extensions()
        if self.cfg['stackgen_user_command']:
            self.install_user_command()
        return super().post_processing_step()

    def install_user_command(self):
        """stackgen's own package into libexec/stackgen, and bin/stackgen running
        its user side with the module's Python. The version must be the one the
        easyconfig names: the module says so to users' overlays."""
        import stackgen
        if stackgen.__version__ != self.cfg['stackgen_user_command']:
            raise EasyBuildError("the easyconfig wants stackgen %s's user command, this is %s: "
                                 "run stackgen render", self.cfg['stackgen_user_command'],
                                 stackgen.__version__)
        target = os.path.join(self.installdir, 'libexec', 'stackgen', 'stackgen')
        remove_dir(target)
        shutil.copytree(os.path.dirname(stackgen.__file__), target,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        launcher = os.path.join(self.installdir, 'bin', 'stackgen')
        write_file(launcher, USER_LAUNCHER)
        os.chmod(launcher, 0o755)

    def source_tarballs(self):
        """The verified tarball of each source extension, from the sourcepath."""
        paths = []
        for name, version, filename, integrity in self.cfg['lab_source_extensions']:
            path = self.obtain_file(filename, no_download=True)
            if not path or not integrity_matches(path, integrity):
                raise EasyBuildError("%s (%s@%s) is missing or differs from its integrity %s",
                                     filename, name, version, integrity)
            paths.append(path)
        return paths

    def build_source_extensions(self):
        """`jupyter labextension install` each tarball into the app dir of this
        install, then one `jupyter lab build`; node comes from STACKGEN_NODE_BIN
        (set by stackgen build) or PATH. What the build fetched is dropped."""
        tarballs = self.source_tarballs()
        app_dir = os.path.join(self.installdir, 'share', 'jupyter', 'lab')
        scratch = os.path.join(self.builddir, 'stackgen-lab-build')
        # the builder's own Jupyter folders and caches must not leak into the central build
        for var, sub in (('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data'),
                         ('YARN_CACHE_FOLDER', 'yarn-cache'), ('npm_config_cache', 'npm-cache')):
            mkdir(os.path.join(scratch, sub), parents=True)
            setvar(var, os.path.join(scratch, sub))
        node_bin = os.environ.get('STACKGEN_NODE_BIN')
        if node_bin:
            setvar('PATH', node_bin + os.pathsep + os.environ.get('PATH', ''))
        if not shutil.which('node'):
            raise EasyBuildError("node is needed to build source extensions and was not found")
        fake = self.load_fake_module(purge=True)
        try:
            app = '--app-dir=' + shlex.quote(app_dir)
            run_shell_cmd('jupyter labextension install --no-build %s %s'
                          % (app, ' '.join(shlex.quote(p) for p in tarballs)))
            run_shell_cmd('jupyter lab build %s --dev-build=False --minimize=True' % app)
        finally:
            self.clean_up_fake_module(fake)
        # what the build fetched and its intermediate output (static/ holds the
        # result): about 400 MB that nobody reads afterwards
        for leftover in ('node_modules', '.yarn', 'build'):
            remove_dir(os.path.join(app_dir, 'staging', leftover))
