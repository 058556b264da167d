"""stackgen's easyblock: a PythonBundle that installs all of a bundle's
verified wheels with one installer call and checks every import in one
interpreter, writes the site's settings (JupyterLab overrides and page
config, server and dask config) into the install, from JSON-like data
declared in the easyconfig, and builds the stack's source-only lab
extensions into JupyterLab's app dir with node.

Why one call: PythonBundle runs one `pip install` and, in the sanity check,
one `python -c "import X"` per extension, about 2 s per package (274 s for
the reference stack's 131 wheels, measured); one installer call over the
same files takes seconds. What EasyBuild gives is kept: the sources are
fetched and their sha256 verified by its fetch step, the module file lists
the extensions (extensions(), $EBEXTSLIST...), the sanity check runs `pip
check` and `pip list`, the log and the easybuild/ folder are in the install.

Handed to EasyBuild with --include-easyblocks; used as
`easyblock = 'StackgenBundle'` in the easyconfigs stackgen renders.
"""

import copy
import glob
import hashlib
import json
import os
import shlex
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from easybuild.easyblocks.generic.pythonbundle import PythonBundle
from easybuild.easyblocks.generic.pythonpackage import (find_python_cmd_from_ec,
                                                         handle_local_py_install_scheme, run_pip_check,
                                                         run_pip_list, symlink_dist_site_packages)
from easybuild.framework.easyconfig import CUSTOM
from easybuild.framework.extension import get_modulenames
from easybuild.tools.build_log import EasyBuildError, print_msg
from easybuild.tools.config import EBPYTHONPREFIXES, PYTHONPATH, build_option
from easybuild.tools.environment import setvar
from easybuild.tools.filetools import copy_file, mkdir, remove_dir, remove_file, write_file
from easybuild.tools.modules import get_software_root
from easybuild.tools.run import run_shell_cmd

# Set by `stackgen build` to the uv it runs with; without it, pip installs.
# Commands below are argv lists run with use_bash=False: EasyBuild 5.4's
# run_shell_cmd runs a list with use_bash=True as `bash argv[1:]`, i.e. it
# executes the second word as a bash script.
UV_ENV = 'STACKGEN_UV'
# ...and to uv's cache, kept by stackgen beside the wheelhouse: uv unpacks a
# wheel there once and copies it into every later install (copies, not hard
# links: an install shares no file with the builder's cache; links measured
# no faster here). Without a cache, uv unpacks every time.
UV_CACHE_ENV = 'STACKGEN_UV_CACHE'
# ...and to the cache of JupyterLab app dirs built with source extensions
# (stackgen.labbuild); without it, every build runs node.
LAB_CACHE_ENV = 'STACKGEN_LAB_CACHE'
# ...and, when it builds modules side by side, to the base's python (the
# wheels are installed from the ready step on, before the base module is
# loaded), the stack modules this build waits for (built by other eb runs of
# the same `stackgen build`, comma-separated), and the folder where each of
# those gets its NAME-VERSION.built or .failed mark.
BASE_PYTHON_ENV = 'STACKGEN_BASE_PYTHON'
AWAIT_ENV = 'STACKGEN_AWAIT_MODULES'
STATUS_ENV = 'STACKGEN_BUILD_STATUS'
# ...and to the niceness of that install: the further a module is from the
# bottom of the chain, the longer it waits anyway, so the lower its install's
# priority against the installs and checks of the modules it waits for.
NICENESS_ENV = 'STACKGEN_INSTALL_NICENESS'
AWAIT_POLL = 0.05         # seconds

# Run by the base interpreter with the new module loaded: import each
# (extension, module) read from stdin as JSON, one marked line per import as
# it happens, so a crash mid-way still shows which imports were reached.
IMPORT_CHECK = r"""
import importlib, json, sys
for ext, module in json.load(sys.stdin):
    try:
        importlib.import_module(module)
        error = None
    except BaseException as exc:
        error = "%s: %s" % (type(exc).__name__, exc)
    sys.stdout.write("stackgen-import " + json.dumps([ext, module, error]) + "\n")
    sys.stdout.flush()
"""
IMPORT_MARK = 'stackgen-import '


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


def easyconfig_digest(path):
    """What the module was built from, as the jupyterlab module's bundle reads it."""
    with open(path, 'rb') as fh:
        return 'sha256:' + hashlib.sha256(fh.read()).hexdigest()[:16]


def installer_argv(python, prefix, sources, uv=None, uv_cache=None):
    """One install of every source into `prefix` for `python`: no dependency
    resolution, no index, nothing uninstalled from the base; with uv when given
    (its unpacked wheels kept in `uv_cache` when given, and copied from there),
    else pip. Both compile bytecode (the install is read-only for its users)."""
    common = ['--no-deps', '--no-index', '--no-build-isolation']
    if uv:
        cache = ['--cache-dir', uv_cache] if uv_cache else ['--no-cache']
        return [uv, 'pip', 'install', '--no-config', '--offline', *cache, '--link-mode=copy',
                '--compile-bytecode', '--python', python, '--prefix', prefix, *common, *sources]
    return [python, '-m', 'pip', 'install', '--prefix', prefix, '--ignore-installed',
            '--no-cache-dir', '--disable-pip-version-check', *common, *sources]


# Run by the base interpreter: what EasyBuild's det_pylibdir asks it for
# (purelib, then platlib, under the prefix /tmp/), by the same means
# (distutils before Python 3.12, sysconfig from then on), in one start
# instead of four (get_pylibdirs starts it for its version before each).
PYLIBDIRS = r"""
import json, sys
prefix = '/tmp/'
if sys.version_info >= (3, 12):
    import sysconfig
    dirs = [sysconfig.get_path(name, vars={'platbase': prefix, 'base': prefix})
            for name in ('purelib', 'platlib')]
else:
    import distutils.sysconfig
    dirs = [distutils.sysconfig.get_python_lib(plat_specific=plat, prefix=prefix)
            for plat in (False, True)]
print(json.dumps(dirs))
"""


def pylibdirs(output):
    """EasyBuild's get_pylibdirs from the output of PYLIBDIRS: relative to the
    prefix, a leading local/ dropped (Ubuntu), no repeats, and an entry
    starting with lib/ added when there is none."""
    dirs = []
    for path in json.loads(output.strip().splitlines()[-1]):
        if not path.startswith('/tmp/'):
            raise EasyBuildError("Python library dir %s is not under the prefix asked for", path)
        path = path[len('/tmp/'):]
        path = path[len('local/'):] if path.startswith('local/') else path
        if path not in dirs:
            dirs.append(path)
    if not any(d.startswith('lib' + os.path.sep) for d in dirs):
        dirs.append(os.path.join('lib', *dirs[0].split(os.path.sep)[1:]))
    return dirs


def import_checks(exts):
    """(extension name, module) for every import to check; `modulename: False`
    in the easyconfig exempts an extension, a list checks each name."""
    return [(ext.name, module) for ext in exts
            for module in get_modulenames(ext, use_name_for_false=False)]


def import_failures(output, checks):
    """The failed checks in the output of IMPORT_CHECK, as (extension, module,
    reason); a check with no report line (the interpreter died) fails too."""
    reported = {}
    for line in output.splitlines():
        if line.startswith(IMPORT_MARK):
            ext, module, error = json.loads(line[len(IMPORT_MARK):])
            reported[(ext, module)] = error
    failures = []
    for check in checks:
        if check not in reported:
            failures.append((*check, "not reached: the checking interpreter stopped before it"))
        elif reported[check] is not None:
            failures.append((*check, reported[check]))
    return failures


def copy_easyconfig(cfg, validate=None):
    """What EasyConfig.copy() returns, without parsing the easyconfig again:
    a deep copy sharing only the logger (every attribute equal to copy()'s,
    each with its own modules tool and toolchain objects, as copy() gives)."""
    new = copy.deepcopy(cfg, {id(cfg.log): cfg.log})
    new.__dict__.pop('copy', None)       # init_ext_instances' shadowing, not the copy's
    new.validation = cfg.validation if validate is None else validate
    return new


def await_marks(status, modules, alive, poll=AWAIT_POLL):
    """Return once each of `modules` ("name/version") has its NAME-VERSION.built
    mark in the folder `status`; raise when one is marked .failed, or when
    the folder is gone or `alive()` is false (whoever set the wait ended
    without marking: a run must not wait for ever)."""
    waiting = list(modules)
    while True:
        for module in list(waiting):
            mark = os.path.join(status, module.replace('/', '-'))
            if os.path.exists(mark + '.failed'):
                raise EasyBuildError("not built: %s, which this module loads, failed to build",
                                     module)
            if os.path.exists(mark + '.built'):
                waiting.remove(module)
        if not waiting:
            return
        if not os.path.isdir(status) or not alive():
            raise EasyBuildError("not built: %s, which this module loads; the stackgen build "
                                 "that started this run has ended", ', '.join(waiting))
        time.sleep(poll)


class StackgenBundle(PythonBundle):
    """PythonBundle installed in one installer call, plus site settings
    written after installation."""

    early_install = None       # (python, future of the install) once start_install ran

    @staticmethod
    def extra_options(extra_vars=None):
        extra_vars = PythonBundle.extra_options(extra_vars)
        extra_vars.update({
            'site_json_files': [{}, "Files to write in the install, as {relative path: JSON-like "
                                    "data}: JupyterLab settings, server and dask config", CUSTOM],
            'stackgen_user_command': ['', "stackgen version whose user side (`stackgen "
                                          "user-overlay`) is installed into bin/ and libexec/", CUSTOM],
            'site_kernels': [[], "The site's kernels, as dicts (name, display_name, modules, "
                                 "env), written into share/jupyter/kernels", CUSTOM],
            'singleuser_launcher': [False, "Write bin/stackgen-singleuser, what a JupyterHub "
                                           "spawner runs to start this stack's server", CUSTOM],
            'jupyter_env': ['', "Folder in the install for a pip-less venv of the base Python "
                                "that the module puts first on PATH, so Jupyter's sys-prefix "
                                "level is this module (holds the stack's server extension "
                                "config)", CUSTOM],
            'lab_source_extensions': [[], "Source-only lab extensions built into JupyterLab's "
                                          "app dir, as (npm name, version, tarball in the "
                                          "sourcepath, npm integrity)", CUSTOM],
        })
        return extra_vars

    def init_ext_instances(self):
        """EasyBlock's, with each extension's copy of the easyconfig made by
        copy_easyconfig: Extension() calls EasyConfig.copy(), which parses the
        whole easyconfig text again for every extension and then replaces what
        it parsed with deep copies of the original (0.7 s for 82 extensions)."""
        cfg = self.cfg
        cfg.copy = lambda validate=None: copy_easyconfig(cfg, validate)
        try:
            super().init_ext_instances()
        finally:
            del cfg.copy

    def prepare_python(self):
        """PythonBundle's, with the Python library dirs asked of the base in
        one interpreter start (see PYLIBDIRS), not four."""
        if get_software_root('Python') is None:
            raise EasyBuildError("Python not included as dependency!")
        self.python_cmd = find_python_cmd_from_ec(self.log, self.cfg, required=True)
        res = run_shell_cmd([self.python_cmd, '-c', PYLIBDIRS], use_bash=False, hidden=True,
                            split_stderr=True)
        self.all_pylibdirs = pylibdirs(res.output)
        self.pylibdir = self.all_pylibdirs[0]
        self.log.info("Python library dirs of %s: %s", self.python_cmd, self.all_pylibdirs)
        if self.python_cmd != 'python':
            with self.cfg.disable_templating():
                orig_exts_filter = self.cfg['exts_filter']
                self.cfg['exts_filter'] = (orig_exts_filter[0].replace('python', self.python_cmd),
                                           orig_exts_filter[1])

    def check_readiness_step(self):
        """Start installing the wheels (verified by the fetch step), then wait
        for the stack modules this one loads that other eb runs are building
        (AWAIT_ENV), then EasyBlock's readiness check. Installing needs
        nothing of those modules (no dependency resolution), so a module's
        install runs while the modules below it are built; only loading them
        (the prepare step) and the sanity check need them."""
        self.start_install()
        self.await_dependencies()
        super().check_readiness_step()

    def installer_sources(self):
        """The source of every extension, as the fetch step found and verified it."""
        missing = [ext['name'] for ext in self.exts if not ext.get('src')]
        if missing:
            raise EasyBuildError("no verified source for: %s", ', '.join(missing))
        return [ext['src'] for ext in self.exts]

    def installer(self, python):
        uv = os.environ.get(UV_ENV)
        return installer_argv(python, self.installdir, self.installer_sources(),
                              uv=uv if uv and os.access(uv, os.X_OK) else None,
                              uv_cache=os.environ.get(UV_CACHE_ENV))

    def start_install(self):
        """The one installer call, started in the background with the base's
        python named by stackgen (BASE_PYTHON_ENV); without it, or with no
        extensions, the extensions step installs as PythonBundle would."""
        python = os.environ.get(BASE_PYTHON_ENV)
        if not python or self.dry_run or not self.exts:
            return
        argv = self.installer(python)
        niceness = int(os.environ.get(NICENESS_ENV) or 0)
        if niceness > 0:
            argv = ['nice', '-n', str(niceness), *argv]
        if os.path.isdir(self.installdir) and os.listdir(self.installdir):
            # what the install step's make_installdir would remove, and no longer does
            self.log.info("Removing what an earlier run left in %s", self.installdir)
            remove_dir(self.installdir)
        mkdir(self.installdir, parents=True)
        self.log.info("Installing %d extensions in one call, from the ready step on: %s",
                      len(self.exts), shlex.join(argv))
        pool = ThreadPoolExecutor(max_workers=1)        # as EasyBlock runs async commands
        self.early_install = (python, pool.submit(run_shell_cmd, argv, use_bash=False,
                                                  asynchronous=True))
        pool.shutdown(wait=False)

    def await_dependencies(self):
        """Wait until every module named in AWAIT_ENV is marked built in
        STATUS_ENV (await_marks); fail when one is marked failed, or when
        the `stackgen build` that started this run is gone."""
        waiting = [m for m in os.environ.get(AWAIT_ENV, '').split(',') if m]
        status = os.environ.get(STATUS_ENV)
        if not waiting or not status:
            return
        print_msg("waiting for %s to be built..." % ', '.join(waiting), log=self.log)
        parent = os.getppid()
        started = time.time()
        await_marks(status, waiting, alive=lambda: os.getppid() == parent)
        self.log.info("Waited %.1f s for the modules this one loads", time.time() - started)

    def make_installdir(self, dontcreate=None):
        """EasyBlock's, but an install under way since the ready step is kept."""
        if self.early_install:
            self.log.info("Keeping %s: the wheels are being installed into it", self.installdir)
            return
        super().make_installdir(dontcreate=dontcreate)

    def install_all_extensions(self, install=True):
        """All extensions' sources (fetched and verified by the fetch step) in one
        installer call into the install dir (the one started in the ready step
        when there is one). Per-extension hooks do not run: nothing is
        installed per extension."""
        if not install or self.dry_run or not self.ext_instances:
            return super().install_all_extensions(install=install)
        python = shutil.which(self.python_cmd) or self.python_cmd
        if self.early_install:
            early_python, running = self.early_install
            running.result()             # raises as run_shell_cmd does when it failed
            if os.path.realpath(early_python) != os.path.realpath(python):
                raise EasyBuildError("the wheels were installed for %s, but the base module's "
                                     "python is %s", early_python, python)
        else:
            argv = self.installer(python)
            self.log.info("Installing %d extensions in one call: %s", len(self.exts),
                          shlex.join(argv))
            run_shell_cmd(argv, use_bash=False)
        remove_file(os.path.join(self.installdir, '.lock'))     # uv's, for the prefix
        # what PythonPackage does after each install, once
        handle_local_py_install_scheme(self.installdir)
        symlink_dist_site_packages(self.installdir, self.all_pylibdirs)
        self.fix_shebang()

    def _sanity_check_step_extensions(self):
        """Every extension's import in one interpreter, while `pip check` and
        `pip list` run over the bundle as PythonBundle runs them, all three
        side by side (each starts an interpreter; the imports take seconds of
        CPU, the pip runs mostly wait on the disk). A failure of any of them
        is reported with the others' (PythonBundle stops at the first)."""
        if not self.ext_instances:         # --module-only, --sanity-check-only
            self.prepare_for_extensions()
            self.init_ext_instances()
        checks = import_checks(self.ext_instances)
        workdir = tempfile.mkdtemp(prefix='eb-sanity-check-')      # nothing shadows a module
        with ThreadPoolExecutor(max_workers=3) as pool:       # as EasyBlock runs async commands
            importing = pool.submit(run_shell_cmd, [self.python_cmd, '-c', IMPORT_CHECK],
                                    stdin=json.dumps(checks), fail_on_error=False,
                                    split_stderr=True, hidden=True, work_dir=workdir,
                                    use_bash=False, asynchronous=True)
            pip_runs = []
            if self.cfg['sanity_pip_check']:
                pip_runs.append(pool.submit(run_pip_check, python_cmd=self.python_cmd))
                pip_runs.append(pool.submit(
                    run_pip_list, [(ext.name, ext.version) for ext in self.ext_instances],
                    python_cmd=self.python_cmd,
                    unversioned_packages=set(self.cfg['unversioned_packages']),
                    check_names_versions=self.cfg['sanity_check_pip_list'] is not False,
                    strict_check=self.cfg['sanity_check_pip_list']))
            res = importing.result()
            for run in pip_runs:
                try:
                    run.result()
                except EasyBuildError as err:
                    self.sanity_check_fail_msgs.append(err.msg)
        failures = import_failures(res.output, checks)
        self.log.info("Import check of %d modules: %d failed", len(checks), len(failures))
        if failures:
            self.sanity_check_fail_msgs.append(
                "import check failed for %d extensions: %s" % (len(failures), ', '.join(
                    "%s (import %s: %s)" % failure for failure in failures)))
            if res.stderr:
                self.log.warning("Import check stderr:\n%s", res.stderr)

    def make_module_extra(self, *args, **kwargs):
        """PythonBundle's Python lines of the module file, with one difference:
        PythonBundle switches to $EBPYTHONPREFIXES when a .pth file lies
        anywhere in the install, which it finds by walking the whole install
        at every (fake) module load: four walks of 10,000 files per build.
        A .pth file acts only in a site dir, so only the install's site dirs
        are looked at (the jupyter_env venv's own .pth is not the module's)."""
        txt = super(PythonBundle, self).make_module_extra(*args, **kwargs)
        site_dirs = self.all_pylibdirs or []
        use_prefixes = self.multi_python or any(
            glob.glob(os.path.join(self.installdir, site_dir, '*.pth')) for site_dir in site_dirs)
        if ('Python' in self.cfg.dependency_names(runtime_only=True)
                and build_option('prefer_python_search_path') == EBPYTHONPREFIXES):
            use_prefixes = True
        added = self.module_generator.added_paths_per_key
        if use_prefixes:
            if '' not in added[EBPYTHONPREFIXES]:
                txt += self.module_generator.prepend_paths(EBPYTHONPREFIXES, '')
            return txt
        # before the install (the extensions step's fake module) every site dir;
        # after it, those that exist
        if self.current_step != 'extensions':
            site_dirs = [d for d in site_dirs if os.path.exists(os.path.join(self.installdir, d))]
        for site_dir in site_dirs:
            if site_dir not in added[PYTHONPATH]:
                txt += self.module_generator.prepend_paths(PYTHONPATH, site_dir)
        return txt

    def post_processing_step(self):
        """Write the site files and build the source extensions, then whatever
        PythonBundle does."""
        write_file(os.path.join(self.installdir, 'share', 'stackgen', 'easyconfig-digest'),
                   easyconfig_digest(self.cfg.path) + '\n')
        if self.cfg['lab_source_extensions']:
            self.build_source_extensions()     # first: it may replace the app dir whole
        for relpath, data in sorted(self.cfg['site_json_files'].items()):
            path = site_file_path(self.installdir, relpath)
            mkdir(os.path.dirname(path), parents=True)
            write_file(path, site_file_text(data))
            self.log.info("Wrote site file %s", path)
        if self.cfg['stackgen_user_command']:
            self.install_user_command()
        if self.cfg['site_kernels']:
            self.install_site_kernels()
        if self.cfg['singleuser_launcher']:
            self.install_singleuser_launcher()
        if self.cfg['jupyter_env']:
            self.make_jupyter_env(os.path.join(self.installdir, self.cfg['jupyter_env']))
        return super().post_processing_step()

    def stack_place(self):
        """(modulepath, this module, Lmod's bash init) for generated launchers."""
        lmod_pkg = os.environ.get('LMOD_PKG') or os.path.dirname(os.path.dirname(
            os.environ.get('LMOD_CMD', '/usr/share/lmod/lmod/libexec/lmod')))
        return (self.installdir_mod, '%s/%s' % (self.name, self.version),
                os.path.join(lmod_pkg, 'init', 'bash'))

    def install_site_kernels(self):
        """kernel.json and its launcher for each site kernel, in share/jupyter/kernels."""
        from stackgen import kernels
        modulepath, module, lmod_init = self.stack_place()
        for kernel in self.cfg['site_kernels']:
            folder = os.path.join(self.installdir, 'share', 'jupyter', 'kernels', kernel['name'])
            spec = kernels.KernelSpec(
                name=kernel['name'], display_name=kernel.get('display_name') or kernel['name'],
                stack_module=module, modulepath=modulepath, lmod_init=lmod_init,
                modules=tuple(kernel.get('modules', ())),
                env=tuple(sorted(kernel.get('env', {}).items())),
                metadata=(('site', 'true'),))
            write_file(os.path.join(folder, 'kernel.json'), kernels.kernel_json(spec, folder))
            write_file(os.path.join(folder, kernels.LAUNCHER), kernels.launcher_text(spec))
            os.chmod(os.path.join(folder, kernels.LAUNCHER), 0o755)

    def install_singleuser_launcher(self):
        from stackgen.templating import environment
        modulepath, module, lmod_init = self.stack_place()
        path = os.path.join(self.installdir, 'bin', 'stackgen-singleuser')
        write_file(path, environment().get_template('singleuser.sh.j2').render(
            modulepath=modulepath, stack_module=module, lmod_init=lmod_init))
        os.chmod(path, 0o755)

    def make_jupyter_env(self, env_dir):
        """`jupyter server extension list` reads only the user, sys-prefix and
        system folders, never JUPYTER_CONFIG_PATH; and Jupyter ranks sys-prefix
        below a user's own ~/.jupyter. So the module's `python` is a venv in
        the install whose etc/jupyter holds the server extension config of this
        module and of the stack modules it loads. It sees the base's packages
        through a .pth file (a venv made from a venv would not)."""
        python = shutil.which(self.python_cmd) or self.python_cmd
        run_shell_cmd([python, '-m', 'venv', '--without-pip', '--clear', env_dir], use_bash=False)
        res = run_shell_cmd([python, '-c', 'import json, site; print(json.dumps(site.getsitepackages()))'],
                            use_bash=False, hidden=True, split_stderr=True)
        base_sites = json.loads(res.output.strip().splitlines()[-1])
        (pylib,) = glob.glob(os.path.join(env_dir, 'lib', 'python*', 'site-packages'))
        write_file(os.path.join(pylib, '_stackgen_base.pth'), '\n'.join(base_sites) + '\n')
        target = os.path.join(env_dir, 'etc', 'jupyter', 'jupyter_server_config.d')
        mkdir(target, parents=True)
        roots = [self.installdir] + [get_software_root(dep['name'])
                                     for dep in self.cfg.dependencies() if not dep['external_module']]
        for root in filter(None, roots):
            for path in sorted(glob.glob(os.path.join(root, 'etc', 'jupyter',
                                                      'jupyter_server_config.d', '*.json'))):
                copy_file(path, target)
        self.log.info("Jupyter environment %s made on %s", env_dir, ', '.join(base_sites))

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
        from stackgen.fetch import digest_for
        paths = []
        for name, version, filename, integrity in self.cfg['lab_source_extensions']:
            path = self.obtain_file(filename, no_download=True)
            if not path or digest_for(path, integrity) != integrity:
                raise EasyBuildError("%s (%s@%s) is missing or differs from its integrity %s",
                                     filename, name, version, integrity)
            paths.append(path)
        return paths

    def build_source_extensions(self):
        """`jupyter labextension install` each tarball into the app dir of this
        install, then one `jupyter lab build`; node comes from STACKGEN_NODE_BIN
        (set by stackgen build) or PATH. What the build fetched is dropped.
        With STACKGEN_LAB_CACHE (stackgen.labbuild), the same build made
        before is copied from there instead, and a new one is kept there."""
        from stackgen import labbuild
        tarballs = self.source_tarballs()
        app_dir = os.path.join(self.installdir, 'share', 'jupyter', 'lab')
        scratch = os.path.join(self.builddir, 'stackgen-lab-build')
        cache = os.environ.get(LAB_CACHE_ENV)
        self.isolate_lab_build(scratch)       # seen by the fake module's footer...
        fake = self.load_fake_module(purge=True)
        try:
            self.isolate_lab_build(scratch)   # ...and again: loading it restored EB's environment
            if not shutil.which('node'):
                raise EasyBuildError("node is needed to build source extensions and was not found")
            key = cache and self.lab_build_key()
            if key and labbuild.restore(cache, key, app_dir):
                print_msg("JupyterLab app dir: the same build (%s) copied from %s" % (key, cache),
                          log=self.log)
                return
            for argv in labbuild.commands(app_dir, tarballs):
                run_shell_cmd(argv, use_bash=False)
        finally:
            self.clean_up_fake_module(fake)
        labbuild.drop_leftovers(app_dir)
        if key:
            labbuild.store(cache, key, app_dir)
            self.log.info("Kept the JupyterLab app dir build %s in %s", key, cache)

    def lab_build_key(self):
        from stackgen import labbuild
        staging = glob.glob(os.path.join(self.installdir, 'lib', 'python*', 'site-packages',
                                         'jupyterlab', 'staging'))
        if len(staging) != 1:
            raise EasyBuildError("JupyterLab's staging folder not found in %s", self.installdir)
        node = run_shell_cmd(['node', '--version'], use_bash=False, hidden=True).output.strip()
        integrities = [integrity for *_, integrity in self.cfg['lab_source_extensions']]
        return labbuild.build_key(staging[0], node, integrities)

    def isolate_lab_build(self, scratch):
        """The lab build's environment (stackgen.labbuild), with the builder's
        own Jupyter folders kept out and yarn's cache the one stackgen build
        keeps across builds (STACKGEN_YARN_CACHE), as it keeps the wheelhouse."""
        from stackgen import labbuild
        for var, sub in (('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data')):
            mkdir(os.path.join(scratch, sub), parents=True)
            setvar(var, os.path.join(scratch, sub), verbose=False)
        build_env = labbuild.environment(os.environ.get('STACKGEN_NODE_BIN'), scratch,
                                         os.environ.get('PATH', ''),
                                         yarn_cache=os.environ.get('STACKGEN_YARN_CACHE'))
        for var, value in sorted(build_env.items()):
            setvar(var, value, verbose=False)
