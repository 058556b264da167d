"""StackgenBundle's build of source-only lab extensions (stack.yaml's
source_extensions) as prebuilt extensions, offline from the lock, each long
step named on the console and in the log and saying it is alive while it
runs; its pure parts are in sources.py and stackgen.common.labbuild."""

import contextlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

from easybuild.tools.build_log import EasyBuildError, print_msg
from easybuild.tools.modules import get_software_root
from easybuild.tools.run import run_shell_cmd

from stackgen.common import labbuild, layout
from stackgen.site.easyblocks import sources
from stackgen.site.easyblocks.contract import NotBuilt


@contextlib.contextmanager
def easybuild_errors():
    """A pure part's error, raised as the EasyBuildError EasyBuild reports."""
    try:
        yield
    except (ValueError, NotBuilt) as err:
        raise EasyBuildError(str(err)) from None


class SourceExtensions:
    """The source-extension steps of StackgenBundle (an EasyBlock)."""

    def run_saying(self, step, still, argv, **kwargs):
        """run_shell_cmd of `argv` after printing `step`, and `still (N s)`
        every sources.HEARTBEAT seconds while it runs: a long node step is
        never minutes of silence, on the console or in the log."""
        print_msg(step, log=self.log)
        with ThreadPoolExecutor(max_workers=1) as pool:        # as EasyBlock runs async commands
            running = pool.submit(run_shell_cmd, argv, use_bash=False, **kwargs)
            return sources.wait_saying(running, lambda s: print_msg("%s (%d s)" % (still, s),
                                                                    log=self.log))

    def build_source_extensions(self):
        """Each source extension built as a prebuilt extension against this
        JupyterLab's core into share/jupyter/labextensions, offline: jlpm
        installs the locked tree (`--immutable`, its only registry one on
        127.0.0.1 serving the verified tarballs), then the extension's own
        builder runs. JupyterLab's app dir is its wheel's, never rebuilt."""
        roots = [self.installdir] + [get_software_root(dep['name']) for dep in self.cfg.dependencies()
                                     if not dep['external_module']]
        with easybuild_errors():
            staging = sources.first_found(labbuild.staging, roots)
            yarn_js = sources.first_found(labbuild.yarn_js, roots)
        with open(os.path.join(staging, 'package.json')) as fh:
            lab_version = json.load(fh)['version']
        node_bin = self.contract.node_bin or os.path.dirname(shutil.which('node') or '')
        node = os.path.join(node_bin, 'node')
        if not node_bin or not os.access(node, os.X_OK):
            raise EasyBuildError("node is needed to build source extensions and was not found")
        target = os.path.join(self.installdir, *layout.JUPYTER_DATA, 'labextensions')
        for entry in self.cfg['lab_source_extensions']:
            self.build_source_extension(entry, staging, yarn_js, node, lab_version, target)

    def build_source_extension(self, entry, staging, yarn_js, node, lab_version, target):
        tarball = self.obtain_file(entry['tarball'], no_download=True)
        yarn_lock = self.obtain_file(entry['yarn_lock'][0], no_download=True)
        with easybuild_errors():
            src = sources.source_build(entry, tarball, yarn_lock)
        folder = os.path.join(self.builddir, 'stackgen-source', entry['tarball'][:-len('.tgz')])
        env = dict(os.environ, **labbuild.node_environment(
            os.path.dirname(node), os.path.dirname(folder), os.environ.get('PATH', ''),
            yarn_cache=self.contract.yarn_cache or None))
        with labbuild.LockedRegistry(src.registry) as registry:
            with easybuild_errors():
                package = labbuild.prepare(src.tarball, folder, lab_version, registry.url,
                                           yarn_lock=src.yarn_lock)
            self.run_saying("%s: installing its %d locked npm packages offline (jlpm install "
                            "--immutable)" % (src.text, len(src.registry)),
                            "%s: still installing its npm packages" % src.text,
                            labbuild.install_argv(node, yarn_js, immutable=True),
                            work_dir=folder, env=env)
        self.run_saying("%s: building it as a prebuilt extension against JupyterLab %s's core"
                        % (src.text, lab_version), "%s: still building it" % src.text,
                        labbuild.build_argv(node, staging), work_dir=folder, env=env)
        with easybuild_errors():
            done = labbuild.install_built(
                folder, package, target, "Built by stackgen from stack.yaml's source_extensions: "
                "remove it there and rebuild the stack")
        labbuild.drop_build_leftovers(folder)
        self.log.info("Installed source extension %s as %s (%d npm packages served, %d asked for)",
                      src.text, done, len(src.registry), len(registry.asked))

