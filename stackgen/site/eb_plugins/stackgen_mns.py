"""EasyBuild's default module naming (modules/all/<name>/<version>.lua),
without the per-moduleclass symlink folders (users see one tree) and
without EasyBuild's devel module (easybuild/<name>-<version>-easybuild-devel,
the build environment of software compiled with a toolchain: a stack
module installs wheels, and writing it cost a fake module load per build)."""

from easybuild.tools.module_naming_scheme.easybuild_mns import EasyBuildMNS


class StackgenMNS(EasyBuildMNS):
    def det_module_symlink_paths(self, ec):
        return []

    def det_make_devel_module(self):
        return False
