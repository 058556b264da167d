"""StackgenBundle's source extensions: each built as a prebuilt extension
against the module's JupyterLab core, offline from its locked npm tree;
its jlpm install started from the ready step when it can; a build kept by
the digest of its inputs and taken from there by later builds of the same
inputs; every long step named on the console and in the log, saying it is
alive while it runs. Pure parts in sources.py and stackgen.common.labbuild."""

import contextlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

from easybuild.tools.build_log import EasyBuildError, print_msg
from easybuild.tools.config import build_path
from easybuild.tools.modules import get_software_root
from easybuild.tools.run import run_shell_cmd

from stackgen.common import labbuild, layout
from stackgen.common.download import digest_for
from stackgen.site.easyblocks import sources
from stackgen.site.easyblocks.contract import NotBuilt

# An early jlpm install (beside the wheels' installs, before the modules this
# one loads are built) takes only what CPU they leave: unniced, node starved
# the chain of installs and checks it ran beside (29 s for ipyparallel's 8).
JLPM_NICENESS = 19


@contextlib.contextmanager
def easybuild_errors():
    """A pure part's error, raised as the EasyBuildError EasyBuild reports."""
    try:
        yield
    except (ValueError, NotBuilt) as err:
        raise EasyBuildError(str(err)) from None


def in_background(function, *args, **kwargs):
    """`function(*args, **kwargs)` run in a thread of its own, as EasyBlock runs
    async commands: its Future (result() waits for it and raises as it did)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(function, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)


class SourceExtensions:
    """The source-extension steps of StackgenBundle (a mixin: it uses the
    easyblock's cfg, exts, contract, early_install and directories)."""

    source_jobs = None         # each source extension's build, once planned
    source_builds = None       # their run in the background, from the postprocessing step on

    def start_source_extensions(self):
        """Plan each source extension's build from the ready step on, when
        stackgen runs this build and the module holds jupyterlab and
        jupyter-builder: one built before from the same inputs comes from the
        cache, the others' jlpm install starts now, beside the wheels' (it
        needs only the locked tarballs, node, and yarn.js from the verified
        jupyter-builder wheel); the builder runs in the postprocessing step."""
        wheels = {ext['name']: ext.get('src') for ext in self.exts}
        if not (self.cfg['lab_source_extensions'] and self.early_install
                and wheels.get('jupyterlab') and wheels.get('jupyter-builder')):
            return
        work = os.path.join(build_path(), 'stackgen-source')
        yarn_js = sources.yarn_js_from_wheel(wheels['jupyter-builder'], work)
        self.source_jobs = self.plan_source_extensions(yarn_js, work, early=True)

    def lab_identity(self, staging=None):
        """The version and digest of the JupyterLab the extensions are built
        against: its wheel in this module, else its staging folder's package.json."""
        lab = next((ext for ext in self.exts if ext['name'] == 'jupyterlab' and ext.get('src')), None)
        if lab:
            return lab['version'], digest_for(lab['src'], 'sha256:')
        package = os.path.join(staging, 'package.json')
        with open(package) as fh:
            return json.load(fh)['version'], digest_for(package, 'sha256:')

    def plan_source_extensions(self, yarn_js, work, early, staging=None):
        """(verified inputs, work folder, cache key, kept build or None, jlpm
        install under way or None) of each source extension."""
        lab_version, lab_digest = self.lab_identity(staging)
        node = self.node()
        node_version = run_shell_cmd([node, '--version'], use_bash=False, hidden=True,
                                     split_stderr=True).output.strip()
        recipe, cache = labbuild.recipe_digest(), self.contract.lab_cache
        jobs = []
        for entry in self.cfg['lab_source_extensions']:
            tarball = self.obtain_file(entry['tarball'], no_download=True)
            yarn_lock = self.obtain_file(entry['yarn_lock'][0], no_download=True)
            with easybuild_errors():
                src = sources.source_build(entry, tarball, yarn_lock)
            key = sources.build_key(entry, lab_digest, node_version, recipe)
            kept = sources.cached_build(cache, key)
            folder = os.path.join(work, entry['tarball'][:-len('.tgz')])
            installing = None
            if not kept:
                installing = in_background(self.jlpm_install, src, folder, node, yarn_js, lab_version,
                                           JLPM_NICENESS if early else 0)
            jobs.append((src, folder, key, kept, installing))
        return jobs

    def run_saying(self, step, still, argv, **kwargs):
        """run_shell_cmd of `argv` after printing `step`, and `still (N s)`
        every sources.HEARTBEAT seconds while it runs: a long node step is
        never minutes of silence, on the console or in the log."""
        print_msg(step, log=self.log)
        with ThreadPoolExecutor(max_workers=1) as pool:        # as EasyBlock runs async commands
            running = pool.submit(run_shell_cmd, argv, use_bash=False, **kwargs)
            return self.wait_saying(running, still)

    def wait_saying(self, future, still):
        return sources.wait_saying(future, lambda s: print_msg("%s (%d s)" % (still, s), log=self.log))

    def node(self):
        node_bin = self.contract.node_bin or os.path.dirname(shutil.which('node') or '')
        node = os.path.join(node_bin, 'node')
        if not node_bin or not os.access(node, os.X_OK):
            raise EasyBuildError("node is needed to build source extensions and was not found")
        return node

    def jlpm_install(self, src, folder, node, yarn_js, lab_version, niceness=0):
        """The locked npm tree of one source extension installed offline
        (`--immutable`, its only registry one on 127.0.0.1 serving the
        verified tarballs), at `niceness`; the package.json it installs from."""
        env = dict(os.environ, **labbuild.node_environment(
            os.path.dirname(node), os.path.dirname(folder), os.environ.get('PATH', ''),
            yarn_cache=self.contract.yarn_cache or None))
        with labbuild.LockedRegistry(src.registry) as registry:
            with easybuild_errors():
                package = labbuild.prepare(src.tarball, folder, lab_version, registry.url,
                                           yarn_lock=src.yarn_lock)
            print_msg("%s: installing its %d locked npm packages offline (jlpm install --immutable)"
                      % (src.text, len(src.registry)), log=self.log)
            argv = labbuild.install_argv(node, yarn_js, immutable=True)
            run_shell_cmd(['nice', '-n', str(niceness), *argv] if niceness else argv, use_bash=False,
                          work_dir=folder, env=env, asynchronous=True)
        self.log.info("jlpm install of %s: %d npm packages served, %d asked for", src.text,
                      len(src.registry), len(registry.asked))
        return package, env

    def start_source_builds(self):
        """Each source extension built as a prebuilt extension against this
        JupyterLab's core into share/jupyter/labextensions, offline, from its
        locked tree (jlpm_install), by the extension's own builder; or taken
        from the cache when the same inputs were built before. JupyterLab's
        app dir is its wheel's, never rebuilt. When the jlpm installs started
        in the ready step, the builds run in the background, beside the
        sanity check (which reads nothing of them), and join_source_builds
        waits for them; else they run here."""
        roots = [self.installdir] + [get_software_root(dep['name']) for dep in self.cfg.dependencies()
                                     if not dep['external_module']]
        with easybuild_errors():
            staging = sources.first_found(labbuild.staging, roots)
        if self.source_jobs is None:
            with easybuild_errors():
                yarn_js = sources.first_found(labbuild.yarn_js, roots)
            self.source_jobs = self.plan_source_extensions(
                str(yarn_js), os.path.join(self.builddir, 'stackgen-source'), early=False,
                staging=staging)
            return self.build_source_extensions(staging, self.node())
        self.source_builds = in_background(self.build_source_extensions, staging, self.node())

    def join_source_builds(self):
        """Wait for the builds start_source_builds left in the background;
        raises as they did."""
        if self.source_builds is not None:
            if not self.source_builds.done():
                print_msg("waiting for the source extensions' build", log=self.log)
            self.source_builds.result()

    def build_source_extensions(self, staging, node):
        """Build or take from the cache each planned source extension (see
        start_source_builds), with `node`, against the core in `staging`."""
        target = os.path.join(self.installdir, *layout.JUPYTER_DATA, 'labextensions')
        how = "Built by stackgen from stack.yaml's source_extensions: remove it there and rebuild the stack"
        for src, folder, key, kept, installing in self.source_jobs:
            if kept:
                print_msg("%s: the prebuilt extension built before from the same inputs (%s)"
                          % (src.text, key[:12]), log=self.log)
                done = labbuild.install_prebuilt(kept, src.name, target, how)
            else:
                if not installing.done():
                    print_msg("%s: waiting for its jlpm install to end" % src.text, log=self.log)
                # raises as run_shell_cmd does when it failed
                package, env = self.wait_saying(installing, "%s: still installing its npm packages"
                                                % src.text)
                self.run_saying("%s: building it as a prebuilt extension against JupyterLab's core"
                                % src.text, "%s: still building it" % src.text,
                                labbuild.build_argv(node, staging), work_dir=folder, env=env)
                with easybuild_errors():
                    built = labbuild.built_dir(folder, package)
                if self.contract.lab_cache:
                    sources.keep_build(self.contract.lab_cache, key, str(built))
                done = labbuild.install_prebuilt(built, package['name'], target, how)
                labbuild.drop_build_leftovers(folder)
            self.log.info("Installed source extension %s as %s", src.text, done)
