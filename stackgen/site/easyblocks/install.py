"""StackgenBundle's install and its checks, as pure parts testable without
EasyBuild: the one installer call, the Python library dirs asked of the
base in one interpreter start, the one-process import check and the reading
of its output, a copy of the easyconfig that does not parse it again, and
the record of checks passed, kept by the digest of their inputs, with the
look at an install that decides whether a recorded pass still holds."""

import copy
import csv
import glob
import hashlib
import json
import os
import stat
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version

from stackgen.common.fsutil import write_atomic


def installer_argv(python, prefix, sources, uv=None, uv_cache=None, compile_bytecode=True):
    """One install of every source into `prefix` for `python`: no dependency
    resolution, no index, nothing uninstalled from the base; with uv when given
    (its unpacked wheels kept in `uv_cache` when given, and copied from there),
    else pip. Both compile bytecode (the install is read-only for its users);
    uv leaves it to bytecode_argv's run when told not to."""
    common = ['--no-deps', '--no-index', '--no-build-isolation']
    if uv:
        cache = ['--cache-dir', uv_cache] if uv_cache else ['--no-cache']
        compiling = ['--compile-bytecode'] if compile_bytecode else []
        return [uv, 'pip', 'install', '--no-config', '--offline', *cache, '--link-mode=copy',
                *compiling, '--python', python, '--prefix', prefix, *common, *sources]
    return [python, '-m', 'pip', 'install', '--prefix', prefix, '--ignore-installed',
            '--no-cache-dir', '--disable-pip-version-check', *common, *sources]


def bytecode_argv(python, cache, prefix, final_prefix):
    """The bytecode of an install into `prefix` that will be used from
    `final_prefix`, compiled by `python` or taken from `cache` (bytecode.py)."""
    return [python, '-I', str(Path(__file__).with_name('bytecode.py')), cache, prefix, final_prefix]


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


# Parameters an extension's copy of the easyconfig only reads, shared with the
# bundle's instead of copied: copying them for each of n extensions is O(n^2)
# (jupyterlab: 97 extensions, each copy held all 97 entries and the source
# extension's npm tree). EasyConfig.update() copies a value before it changes it.
SHARED_PARAMETERS = ('exts_list', 'lab_source_extensions', 'site_json_files', 'site_kernels')


def copy_easyconfig(cfg, validate=None):
    """What EasyConfig.copy() returns, without parsing the easyconfig again:
    a deep copy sharing the logger, the parser (which holds the easyconfig's
    text, read by nothing an extension does) and the values of
    SHARED_PARAMETERS (every attribute equal to copy()'s, each with its own
    modules tool and toolchain objects, as copy() gives)."""
    memo = {id(cfg.log): cfg.log, id(cfg.parser): cfg.parser}
    for name in SHARED_PARAMETERS:
        entry = cfg._config.get(name)
        if entry is not None:
            memo[id(entry[0])] = entry[0]
    new = copy.deepcopy(cfg, memo)
    new.__dict__.pop('copy', None)       # init_ext_instances' shadowing, not the copy's
    new.validation = cfg.validation if validate is None else validate
    return new


# Run by the base interpreter with the new module loaded, its own install
# (argv[1]) left out: what an import check's outcome depends on beside the
# module's own files, the interpreter and the distributions on its path
# (the base's own packages, the loaded modules').
CHECK_CONTEXT = r"""
import json, os, sys
own = os.path.realpath(sys.argv[1])
dists = []
for entry in sys.path:
    path = os.path.realpath(entry) if entry else ''
    if not path or path == own or path.startswith(own + os.sep) or not os.path.isdir(path):
        continue
    dists.append([entry.rsplit(os.sep, 1)[-1], sorted(
        n for n in os.listdir(path) if n.endswith(('.dist-info', '.egg-info')))])
exe = os.path.realpath(sys.executable)
st = os.stat(exe)
print(json.dumps({"python": [exe, sys.version, st.st_size, st.st_mtime_ns], "path": dists}))
"""


def inputs_digest(inputs):
    """The digest of a JSON-able description of what something is made from
    (a module's checks: install.CHECK_CONTEXT and the checks' other inputs;
    a prebuilt source extension: sources.build_key): the same inputs, the
    same digest, under which what was made or checked is kept."""
    text = json.dumps(inputs, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def recorded_pass(cache, key):
    """What was recorded when a module with `key` passed its checks, or None."""
    try:
        with open(os.path.join(cache, key + '.json'), encoding='utf-8') as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def record_pass(cache, key, record):
    """Record that the checks of `key` passed (whole or not at all)."""
    write_atomic(Path(cache) / (key + '.json'), json.dumps(record, sort_keys=True))


def settle_permissions(root, umask=0o022):
    """What EasyBlock's permissions step makes of an install with no group:
    write removed for group and others, read added for all and search for
    all on folders (both within `umask`), symlinks left alone; each path
    changed only when it differs. Returns how many paths were changed."""
    read = (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH) & ~umask
    search = (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) & ~umask
    no_write = ~(stat.S_IWGRP | stat.S_IWOTH)

    def settle(path, extra):
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return 0
        if stat.S_ISLNK(mode):
            return 0
        wanted = (stat.S_IMODE(mode) & no_write) | read | extra
        if wanted == stat.S_IMODE(mode):
            return 0
        os.chmod(path, wanted)
        return 1

    changed = settle(root, search)
    for folder, dirs, files in os.walk(root):
        changed += sum(settle(os.path.join(folder, d), search) for d in dirs)
        changed += sum(settle(os.path.join(folder, f), 0) for f in files)
    return changed


def install_faults(site_dirs, packages):
    """What is wrong with an install next to what its wheels hold: each of
    `packages` ((name, version)) must have its .dist-info in one of
    `site_dirs`, of that version, with every file its RECORD names (files
    in the site dir of the size recorded; scripts elsewhere get their
    shebang rewritten, so only their presence counts). The first faults, in
    words; none when the install is whole."""
    faults, found = [], {}
    for site in site_dirs:
        for entry in sorted(glob.glob(os.path.join(site, '*.dist-info'))):
            base = os.path.basename(entry)[:-len('.dist-info')]
            name, _, version = base.partition('-')
            found[canonicalize_name(name)] = (version, site, entry)
    for name, version in packages:
        hit = found.get(canonicalize_name(name))
        if hit is None:
            faults.append(f"{name} {version}: no .dist-info in the install")
        elif canonicalize_version(hit[0]) != canonicalize_version(version):
            faults.append(f"{name} {version}: the install holds version {hit[0]}")
        else:
            faults.extend(f"{name} {version}: {fault}" for fault in _record_faults(*hit[1:]))
        if len(faults) >= 10:
            break
    return faults[:10]


def _record_faults(site, dist_info):
    try:
        with open(os.path.join(dist_info, 'RECORD'), newline='', encoding='utf-8') as fh:
            rows = list(csv.reader(fh))
    except OSError as err:
        return [f"its RECORD cannot be read ({err.strerror})"]
    faults = []
    for row in rows:
        if not row or not row[0]:
            continue
        try:
            size = os.stat(os.path.join(site, row[0])).st_size
        except OSError:
            faults.append(f"{row[0]} is missing")
            continue
        # outside the site dir (../../../bin/x) only the presence counts
        if len(row) > 2 and row[2].isdigit() and not row[0].startswith('..') \
                and int(row[2]) != size:
            faults.append(f"{row[0]} has {size} bytes, its RECORD says {row[2]}")
    return faults
