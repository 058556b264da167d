"""stackgen's easyblock: a PythonBundle that installs all of a bundle's
verified wheels with one installer call (PythonBundle runs one pip and one
import per package: 274 s for the reference stack's 131 wheels, measured),
checks every import in one interpreter, and writes the Jupyter payload into
the install: site settings, launchers, the user side, source extensions
(sourceext.py).
What EasyBuild gives is kept: fetch and sha256 checks, extensions() in the
module file, `pip check` and `pip list`, the log and easybuild/ folder.

Handed to EasyBuild with --include-easyblocks; used as `easyblock =
'StackgenBundle'` in the easyconfigs stackgen renders. Its pure parts are
beside it (install.py, payload.py), its source-extension steps in
sourceext.py, its checks in checks.py, its contract with `stackgen build`
in contract.py.
"""

import glob
import os
import shlex
import shutil
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

from easybuild.easyblocks.generic import pythonpackage
from easybuild.easyblocks.generic.pythonbundle import PythonBundle
from easybuild.framework.easyconfig import CUSTOM
from easybuild.tools.build_log import EasyBuildError, print_msg
from easybuild.tools.config import EBPYTHONPREFIXES, PYTHONPATH, build_option
from easybuild.tools.filetools import copy_file, mkdir, remove_dir, remove_file, write_file
from easybuild.tools.modules import get_software_root
from easybuild.tools.run import run_shell_cmd

from stackgen.common import layout
from stackgen.site.easyblocks import install, payload
from stackgen.site.easyblocks.checks import InstallChecks
from stackgen.site.easyblocks.contract import BuildContract, BuildStatus
from stackgen.site.easyblocks.sourceext import SourceExtensions, easybuild_errors, in_background

# Commands below are argv lists run with use_bash=False: EasyBuild 5.4's
# run_shell_cmd runs a list with use_bash=True as `bash argv[1:]`, i.e. it
# executes the second word as a bash script.


class StackgenBundle(SourceExtensions, InstallChecks, PythonBundle):
    """PythonBundle installed in one installer call, plus the Jupyter payload."""

    early_install = None       # (python, future of the install) once start_install ran

    @property
    def contract(self):
        """What `stackgen build` told this run (nothing when eb runs by hand)."""
        return BuildContract.from_environ()

    @staticmethod
    def extra_options(extra_vars=None):
        extra_vars = PythonBundle.extra_options(extra_vars)
        extra_vars.update({name: [default, help, CUSTOM] for name, (default, help) in {
            'site_json_files': ({}, "Files to write in the install, {relative path: JSON-like "
                                    "data}: JupyterLab settings, server and dask config"),
            'stackgen_user_command': ('', "stackgen version whose user side goes into bin/, libexec/"),
            'site_kernels': ([], "The site's kernels (dicts: name, display_name, modules, env)"),
            'singleuser_launcher': (False, "Write bin/stackgen-singleuser, the spawner's command"),
            'jupyterhub_env_timeout': (30, "Seconds ~/.jupyterhub.env may run in the launcher"),
            'jupyter_env': ('', "Folder for a pip-less venv of the base Python, first on PATH: "
                                "Jupyter's sys-prefix level, with the stack's server config"),
            'lab_source_extensions': ([], "Source-only lab extensions built as prebuilt ones "
                                          "(dicts: name, version, tarball, integrity, yarn_lock "
                                          "(file, sha256), tree [(name, version, integrity)])"),
        }.items()})
        return extra_vars

    def init_ext_instances(self):
        """EasyBlock's, with each extension's copy of the easyconfig made by
        install.copy_easyconfig: Extension() calls EasyConfig.copy(), which parses the
        whole easyconfig text again for every extension and then replaces what
        it parsed with deep copies of the original (0.7 s for 82 extensions)."""
        cfg = self.cfg
        cfg.copy = lambda validate=None: install.copy_easyconfig(cfg, validate)
        try:
            super().init_ext_instances()
        finally:
            del cfg.copy

    def prepare_python(self):
        """PythonBundle's, with the Python library dirs asked of the base in
        one interpreter start (see install.PYLIBDIRS), not four."""
        if get_software_root('Python') is None:
            raise EasyBuildError("Python not included as dependency!")
        self.python_cmd = pythonpackage.find_python_cmd_from_ec(self.log, self.cfg, required=True)
        res = run_shell_cmd([self.python_cmd, '-c', install.PYLIBDIRS], use_bash=False, hidden=True,
                            split_stderr=True)
        with easybuild_errors():
            self.all_pylibdirs = install.pylibdirs(res.output)
        self.pylibdir = self.all_pylibdirs[0]
        self.log.info("Python library dirs of %s: %s", self.python_cmd, self.all_pylibdirs)
        if self.python_cmd != 'python':
            with self.cfg.disable_templating():
                orig_exts_filter = self.cfg['exts_filter']
                self.cfg['exts_filter'] = (orig_exts_filter[0].replace('python', self.python_cmd),
                                           orig_exts_filter[1])

    def check_readiness_step(self):
        """Start installing the wheels, then wait for the stack modules this one
        loads that other eb runs are building (installing without resolving
        needs nothing of them; loading them and the sanity check do)."""
        self.start_install()
        self.start_source_extensions()
        self.await_dependencies()
        super().check_readiness_step()

    def install_commands(self, python, niceness=0):
        """The one install of every extension's source as the fetch step
        verified it, then, when stackgen keeps compiled bytecode, the
        bytecode taken from there or compiled (uv compiles it otherwise)."""
        missing = [ext['name'] for ext in self.exts if not ext.get('src')]
        if missing:
            raise EasyBuildError("no verified source for: %s", ', '.join(missing))
        contract = self.contract
        uv = contract.uv if contract.uv and os.access(contract.uv, os.X_OK) else None
        cache = contract.bytecode_cache if uv else ''
        commands = [install.installer_argv(python, self.installdir, [ext['src'] for ext in self.exts],
                                           uv=uv, uv_cache=contract.uv_cache or None,
                                           compile_bytecode=not cache)]
        if cache:
            commands.append(install.bytecode_argv(python, cache, self.installdir,
                                                  self.stack_place().install))
        return [['nice', '-n', str(niceness), *argv] if niceness else argv for argv in commands]

    @staticmethod
    def run_install(commands, background=False):
        """The install's commands in turn, as EasyBuild runs commands."""
        for argv in commands:
            run_shell_cmd(argv, use_bash=False, asynchronous=background)

    def start_install(self):
        """The one installer call, started in the background with the base's
        python named by stackgen (BuildContract.base_python); without it, or with no
        extensions, the extensions step installs as PythonBundle would."""
        python = self.contract.base_python
        if not python or self.dry_run or not self.exts:
            return
        commands = self.install_commands(python, self.contract.install_niceness)
        if os.path.isdir(self.installdir) and os.listdir(self.installdir):
            # what the install step's make_installdir would remove, and no longer does
            self.log.info("Removing what an earlier run left in %s", self.installdir)
            remove_dir(self.installdir)
        mkdir(self.installdir, parents=True)
        self.log.info("Installing %d extensions in one call, from the ready step on: %s",
                      len(self.exts), ' && '.join(map(shlex.join, commands)))
        self.early_install = (python, in_background(self.run_install, commands, True))

    def await_dependencies(self):
        """Wait until every module the contract names is marked built in its
        status folder; fail when one is marked failed, or when
        the `stackgen build` that started this run is gone."""
        waiting, status = self.contract.await_modules, self.contract.build_status
        if not waiting or not status:
            return
        print_msg("waiting for %s to be built..." % ', '.join(waiting), log=self.log)
        parent = os.getppid()
        started = time.time()
        with easybuild_errors():
            BuildStatus(status).wait_for(waiting, alive=lambda: os.getppid() == parent)
        self.log.info("Waited %.1f s for the modules this one loads", time.time() - started)

    def permissions_step(self):
        """EasyBlock's permissions for an install of no group and neither a
        read-only nor a group-writable option (stackgen's builds): no write
        for group and others, read for all, search on folders for all, within
        the umask; in one walk that changes only what differs, where EasyBlock
        walks the install three times and logs every file four times (0.35 s
        of the jupyterlab module's critical path, measured). Any other
        setting is EasyBlock's."""
        if self.group is not None or build_option('read_only_installdir') or \
                build_option('group_writable_installdir'):
            return super().permissions_step()
        umask = int(build_option('umask') or '0', 8)
        changed = install.settle_permissions(self.installdir, umask)
        self.log.info("Permissions of %s: no write for group and others, read for all (umask "
                      "%03o); %d paths changed", self.installdir, umask, changed)

    def make_installdir(self, dontcreate=None):
        """EasyBlock's, but an install under way since the ready step is kept."""
        if self.early_install:
            self.log.info("Keeping %s: the wheels are being installed into it", self.installdir)
            return
        super().make_installdir(dontcreate=dontcreate)

    def install_all_extensions(self, install=True):
        """All extensions' verified sources in one installer call (the one started
        in the ready step when there is one); no per-extension hooks run."""
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
            commands = self.install_commands(python)
            self.log.info("Installing %d extensions in one call: %s", len(self.exts),
                          ' && '.join(map(shlex.join, commands)))
            self.run_install(commands)
        remove_file(os.path.join(self.installdir, '.lock'))     # uv's, for the prefix
        # what PythonPackage does after each install, once
        pythonpackage.handle_local_py_install_scheme(self.installdir)
        pythonpackage.symlink_dist_site_packages(self.installdir, self.all_pylibdirs)
        self.fix_shebang()

    def make_module_extra(self, *args, **kwargs):
        """PythonBundle's Python lines, but a .pth file (which switches to
        $EBPYTHONPREFIXES) is looked for in the site dirs only, where it acts,
        not by walking the whole install at every fake module load (4 x 10,000
        files per build); the jupyter_env venv's own .pth is not the module's."""
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

    @contextmanager
    def sanity_check_module_environment(self, extra_modules=None, check_loaded=True):
        """EasyBlock's, but not for Bundle's check of its components when it has
        none (a stack module never has): Bundle's sanity check loads the fake
        module once more for them after EasyBlock's check, which has loaded it
        (the module's load is checked there) and run the checks."""
        if not check_loaded and not self.comp_cfgs_sanity_check:
            yield
            return
        with super().sanity_check_module_environment(extra_modules=extra_modules, check_loaded=check_loaded):
            yield

    def make_module_dep(self, unload_info=None):
        """EasyBuild's load lines, after those that find the base where this
        build found it (BuildContract.base_modulepath)."""
        base = next((dep['full_mod_name'] for dep in self.cfg.dependencies() if dep['external_module']), '')
        lines = payload.base_modulepath_lua(base, self.contract.base_modulepath) if base else ''
        return lines + super().make_module_dep(unload_info=unload_info)

    def make_module_description(self):
        """EasyBuild's help and whatis, with its "Included extensions" titled
        for users: they are the module's Python packages (its Jupyter
        extensions are named in the usage section, above)."""
        generator = self.module_generator
        section = generator._generate_section
        title = 'Python packages (%d)' % len(self.cfg['exts_list'])

        def retitled(name, text, strip=False):
            if name != 'Included extensions':
                return section(name, text, strip=strip)
            # one name per place: EasyBuild's wrap splits charset-normalizer at its hyphen
            return section(title, textwrap.fill(self.make_extension_string(), 78, break_on_hyphens=False,
                                                break_long_words=False), strip=strip)
        generator._generate_section = retitled
        try:
            return super().make_module_description()
        finally:
            del generator._generate_section

    def post_processing_step(self):
        """Write the site files and build the source extensions, then whatever
        PythonBundle does."""
        write_file(os.path.join(self.installdir, *layout.EASYCONFIG_DIGEST),
                   payload.easyconfig_digest(self.cfg.path) + '\n')
        write_file(os.path.join(self.installdir, *layout.BASE_MODULEPATH),
                   ''.join(p + '\n' for p in self.contract.base_modulepath.split(os.pathsep) if p))
        if self.cfg['lab_source_extensions']:
            self.start_source_builds()
        for relpath, data in sorted(self.cfg['site_json_files'].items()):
            with easybuild_errors():
                path = payload.site_file_path(self.installdir, relpath)
            mkdir(os.path.dirname(path), parents=True)
            write_file(path, payload.site_file_text(data))
            self.log.info("Wrote site file %s", path)
        if self.cfg['stackgen_user_command']:
            self.install_user_command()
        place = self.stack_place()
        scripts = [file for kernel in self.cfg['site_kernels']
                   for file in payload.site_kernel_files(kernel, self.installdir, place)]
        if self.cfg['singleuser_launcher']:
            scripts.append(payload.singleuser_launcher(self.installdir, place,
                                                       self.cfg['jupyterhub_env_timeout']))
        for path, text, mode in scripts:
            write_file(path, text)
            os.chmod(path, mode)
        if self.cfg['jupyter_env']:
            self.make_jupyter_env(os.path.join(self.installdir, self.cfg['jupyter_env']))
        return super().post_processing_step()

    def cleanup_step(self):
        """The source extensions' build joined (it ran beside the sanity check),
        then EasyBlock's cleanup, which removes the build folder it works in."""
        self.join_source_builds()
        return super().cleanup_step()

    def stack_place(self):
        """Where generated launchers find this module and Lmod."""
        lmod_pkg = os.environ.get('LMOD_PKG') or os.path.dirname(os.path.dirname(
            os.environ.get('LMOD_CMD', '/usr/share/lmod/lmod/libexec/lmod')))
        final = self.contract.final_prefix
        return payload.Place(
            str(Path(final).joinpath(*layout.MODULEPATH)) if final else self.installdir_mod,
            '%s/%s' % (self.name, self.version), os.path.join(lmod_pkg, 'init', 'bash'),
            str(layout.install_dir(final, self.name, self.version)) if final else self.installdir)

    def make_jupyter_env(self, env_dir):
        """The module's `python`: a venv in the install whose etc/jupyter holds
        the server extension config of the stack's modules (`jupyter server
        extension list` never reads JUPYTER_CONFIG_PATH, and sys-prefix ranks
        below ~/.jupyter); it runs on the base module loaded at run time, not
        the one it was made with (payload.jupyter_env_files)."""
        python = shutil.which(self.python_cmd) or self.python_cmd
        run_shell_cmd([python, '-m', 'venv', '--without-pip', '--clear', env_dir], use_bash=False)
        (pylib,) = glob.glob(os.path.join(env_dir, 'lib', 'python*', 'site-packages'))
        version = os.path.basename(os.path.dirname(pylib))[len('python'):]
        for path, text, mode in payload.jupyter_env_files(env_dir, pylib, version,
                                                          '%s/%s' % (self.name, self.version)):
            remove_file(path)           # bin/pythonX.Y: the venv's link to the build's base
            write_file(path, text)
            os.chmod(path, mode)
        target = os.path.join(env_dir, *layout.SERVER_CONFIG_D)
        mkdir(target, parents=True)
        roots = [self.installdir] + [get_software_root(dep['name'])
                                     for dep in self.cfg.dependencies() if not dep['external_module']]
        for root in filter(None, roots):
            for path in sorted(glob.glob(os.path.join(root, *layout.SERVER_CONFIG_D, '*.json'))):
                copy_file(path, target)
        self.log.info("Jupyter environment %s made, Python %s", env_dir, version)

    def install_user_command(self):
        """The user side of stackgen into libexec/stackgen, and bin/stackgen running
        its user side with the module's Python. The version must be the one the
        easyconfig names: the module says so to users' overlays."""
        import stackgen
        if stackgen.__version__ != self.cfg['stackgen_user_command']:
            raise EasyBuildError("the easyconfig wants stackgen %s's user command, this is %s: "
                                 "run stackgen render", self.cfg['stackgen_user_command'],
                                 stackgen.__version__)
        target = os.path.join(self.installdir, *layout.USER_CODE, 'stackgen')
        remove_dir(target)
        payload.copy_user_side(os.path.dirname(stackgen.__file__), target)
        path, text, mode = payload.user_launcher(self.installdir)
        write_file(path, text)
        os.chmod(path, mode)
