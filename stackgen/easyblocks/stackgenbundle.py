"""stackgen's easyblock: a PythonBundle that also writes the site's settings
(JupyterLab overrides and page config, server and dask config) into the
install, from JSON-like data declared in the easyconfig.

Handed to EasyBuild with --include-easyblocks; used as
`easyblock = 'StackgenBundle'` in the easyconfigs stackgen renders.
"""

import json
import os

from easybuild.easyblocks.generic.pythonbundle import PythonBundle
from easybuild.framework.easyconfig import CUSTOM
from easybuild.tools.build_log import EasyBuildError
from easybuild.tools.filetools import mkdir, write_file


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


class StackgenBundle(PythonBundle):
    """PythonBundle plus site settings written after installation."""

    @staticmethod
    def extra_options(extra_vars=None):
        extra_vars = PythonBundle.extra_options(extra_vars)
        extra_vars.update({
            'site_json_files': [{}, "Files to write in the install, as {relative path: JSON-like "
                                    "data}: JupyterLab settings, server and dask config", CUSTOM],
        })
        return extra_vars

    def post_processing_step(self):
        """Write the site files, then whatever PythonBundle does."""
        for relpath, data in sorted(self.cfg['site_json_files'].items()):
            path = site_file_path(self.installdir, relpath)
            mkdir(os.path.dirname(path), parents=True)
            write_file(path, site_file_text(data))
            self.log.info("Wrote site file %s", path)
        return super().post_processing_step()
