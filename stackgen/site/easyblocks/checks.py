"""StackgenBundle's checks of an install: every extension's import in one
interpreter, side by side with `pip check` and `pip list` as PythonBundle
runs them, and the record of checks passed, kept by the digest of their
inputs, which a later build of the same inputs takes instead of checking
again once its install holds every file of its wheels (as a test runner
keeps the results of unchanged tests); `stackgen build --recheck` checks
all the same. Pure parts in install.py."""

import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from easybuild.easyblocks.generic import pythonpackage
from easybuild.framework.extension import get_modulenames
from easybuild.tools.build_log import EasyBuildError, print_msg
from easybuild.tools.run import run_shell_cmd

from stackgen.common import layout
from stackgen.site.easyblocks import install, payload

# Commands below are argv lists run with use_bash=False: EasyBuild 5.4's
# run_shell_cmd runs a list with use_bash=True as `bash argv[1:]`.


def import_checks(exts):
    """(extension name, module) for every import to check; `modulename: False`
    in the easyconfig exempts an extension, a list checks each name."""
    return [(ext.name, module) for ext in exts
            for module in get_modulenames(ext, use_name_for_false=False)]


class InstallChecks:
    """The sanity check's extension part for StackgenBundle (a mixin: it uses
    the PythonBundle attributes and the build contract of the class it is
    mixed into)."""

    def _sanity_check_step_extensions(self):
        """Every extension's import in one interpreter, side by side with `pip
        check` and `pip list` as PythonBundle runs them (CPU against disk); all
        failures are reported together (PythonBundle stops at the first).
        A pass is recorded by the digest of the checks' inputs; a later build
        of the same inputs whose install holds every file of its wheels takes
        that record instead of checking again (as a test runner keeps the
        results of unchanged tests), unless `stackgen build --recheck`."""
        if not self.ext_instances:         # --module-only, --sanity-check-only
            self.prepare_for_extensions()
            self.init_ext_instances()
        checks = import_checks(self.ext_instances)
        workdir = tempfile.mkdtemp(prefix='eb-sanity-check-')      # nothing shadows a module
        key = self.check_key(checks, workdir)
        if key and self.passed_before(key, len(checks)):
            return
        failed_before = len(self.sanity_check_fail_msgs)
        with ThreadPoolExecutor(max_workers=3) as pool:       # as EasyBlock runs async commands
            importing = pool.submit(run_shell_cmd, [self.python_cmd, '-c', install.IMPORT_CHECK],
                                    stdin=json.dumps(checks), fail_on_error=False,
                                    split_stderr=True, hidden=True, work_dir=workdir,
                                    use_bash=False, asynchronous=True)
            pip_runs = []
            if self.cfg['sanity_pip_check']:
                pip_runs.append(pool.submit(pythonpackage.run_pip_check, python_cmd=self.python_cmd))
                pip_runs.append(pool.submit(
                    pythonpackage.run_pip_list, [(ext.name, ext.version) for ext in self.ext_instances],
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
        failures = install.import_failures(res.output, checks)
        self.log.info("Import check of %d modules: %d failed", len(checks), len(failures))
        if failures:
            self.sanity_check_fail_msgs.append(
                "import check failed for %d extensions: %s" % (len(failures), ', '.join(
                    "%s (import %s: %s)" % failure for failure in failures)))
            if res.stderr:
                self.log.warning("Import check stderr:\n%s", res.stderr)
        elif key and len(self.sanity_check_fail_msgs) == failed_before:
            install.record_pass(self.contract.check_cache, key, {
                'module': '%s/%s' % (self.name, self.version), 'imports': len(checks),
                'pip_check': bool(self.cfg['sanity_pip_check']),
                'prefix': self.contract.final_prefix or self.installdir,
                'when': time.strftime('%Y-%m-%d %H:%M:%S')})

    def check_key(self, checks, workdir):
        """The digest of what this module's checks depend on (its easyconfig,
        the loaded modules' easyconfigs, CHECK_CONTEXT's output, the checks,
        uv and the checking code): the same inputs, installed the same way,
        pass the same checks. None when `stackgen build` keeps no record of
        passed checks."""
        if not self.contract.check_cache:
            return None
        res = run_shell_cmd([self.python_cmd, '-c', install.CHECK_CONTEXT, self.installdir],
                            use_bash=False, hidden=True, split_stderr=True, work_dir=workdir)
        loaded = {}
        for var, root in sorted(os.environ.items()):
            digest = os.path.join(root, *layout.EASYCONFIG_DIGEST)
            if var.startswith('EBROOT') and os.path.isfile(digest) and \
                    os.path.realpath(root) != os.path.realpath(self.installdir):
                with open(digest, encoding='utf-8') as fh:
                    loaded[var] = fh.read().strip()
        code = hashlib.sha256()
        for module in (install, sys.modules[__name__], sys.modules[type(self).__module__]):
            with open(module.__file__, 'rb') as fh:
                code.update(fh.read())
        uv = self.contract.uv
        return install.inputs_digest({
            'easyconfig': payload.easyconfig_digest(self.cfg.path), 'loaded': loaded,
            'context': json.loads(res.output.strip().splitlines()[-1]), 'checks': checks,
            'pip_check': bool(self.cfg['sanity_pip_check']),
            'pip_list': repr(self.cfg['sanity_check_pip_list']),
            'unversioned': sorted(self.cfg['unversioned_packages']),
            'installer': [uv, os.stat(uv).st_size] if uv else None,
            'code': code.hexdigest()})

    def passed_before(self, key, imports):
        """True when these checks passed before for the same inputs (recorded
        under `key`) and this install holds every file of its wheels: the
        checks are then not run again, unless `stackgen build --recheck`."""
        if self.contract.recheck:
            self.log.info("Checks run again (--recheck), whatever passed before (%s)", key)
            return False
        record = install.recorded_pass(self.contract.check_cache, key)
        if not record:
            return False
        site_dirs = [os.path.join(self.installdir, d) for d in self.all_pylibdirs]
        faults = install.install_faults(site_dirs, [(ext.name, ext.version)
                                                    for ext in self.ext_instances])
        if faults:
            self.log.info("Checks run again: they passed for the same inputs (%s) on %s, but "
                          "this install is not what its wheels hold: %s", key, record.get('when'),
                          '; '.join(faults))
            return False
        print_msg("import check (%d modules) and pip check passed before for the same inputs "
                  "(%s, %s) and the install holds every file of its wheels: not run again "
                  "(--recheck runs them)" % (imports, key[:12], record.get('when')), log=self.log)
        return True
