"""EasyBuild's default module naming (modules/all/<name>/<version>.lua),
without the per-moduleclass symlink folders: users see one tree."""

from easybuild.tools.module_naming_scheme.easybuild_mns import EasyBuildMNS


class StackgenMNS(EasyBuildMNS):
    def det_module_symlink_paths(self, ec):
        return []
