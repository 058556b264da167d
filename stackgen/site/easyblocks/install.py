"""StackgenBundle's install and its checks, as pure parts testable without
EasyBuild: the one installer call, the Python library dirs asked of the
base in one interpreter start, the one-process import check and the reading
of its output, and a copy of the easyconfig that does not parse it again."""

import copy
import json
import os


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
            raise ValueError(f"Python library dir {path} is not under the prefix asked for")
        path = path[len('/tmp/'):]
        path = path[len('local/'):] if path.startswith('local/') else path
        if path not in dirs:
            dirs.append(path)
    if not any(d.startswith('lib' + os.path.sep) for d in dirs):
        dirs.append(os.path.join('lib', *dirs[0].split(os.path.sep)[1:]))
    return dirs


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
