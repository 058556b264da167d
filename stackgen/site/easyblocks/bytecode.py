"""Bytecode for an install's Python files, with compiled code kept by the
digest of each source and taken from there by every later install of the
same source. Compiling is most of an install's CPU (about 6 of the 9 to
11.5 s of CPU a bare `uv pip install --compile-bytecode` of the reference
stack takes here), and a site installs the same wheels over and over.

Run by the install's own interpreter (its magic number and cache tag are the
bytecode's), stdlib only, isolated (-I: nothing of stackgen's on its path):

    python -I bytecode.py CACHE ROOT FINAL

ROOT is the install (a staging folder), FINAL where it will be used (the
code's file names). Every .py file in ROOT's library dirs (this
interpreter's purelib and platlib with ROOT as the prefix, where uv and pip
install and compile) gets the .pyc `compileall.compile_file(path, force=True)`
writes (what uv and pip run): the same code, the same header (the source's
mtime and size, or its hash when SOURCE_DATE_EPOCH is set), but named by its
final path. A source in the cache (CACHE/<cache tag>-<magic>/<sha256>.pyc,
a link to the first .pyc compiled from it, or a copy across file systems)
is not compiled again: its code is read, renamed when it was compiled for
another path, and written with this file's header. The rest are compiled
side by side, as uv does; a file that does not compile gets no .pyc, as
with uv and pip. This only adds to the cache (`stackgen build` prunes it):
an entry is written under a temporary name and renamed, and an entry this
interpreter cannot read is compiled again (and replaced).
"""

import hashlib
import importlib.util
import marshal
import os
import py_compile
import sys
import sysconfig
import types
import warnings
from concurrent.futures import ProcessPoolExecutor

MAGIC = importlib.util.MAGIC_NUMBER


def hash_based():
    """py_compile's default: hash-based pycs when SOURCE_DATE_EPOCH is set."""
    return bool(os.environ.get('SOURCE_DATE_EPOCH'))


def header(data, st):
    """The 16 bytes py_compile writes before a source's code."""
    if hash_based():
        return MAGIC + (0b11).to_bytes(4, 'little') + importlib.util.source_hash(data)
    return (MAGIC + (0).to_bytes(4, 'little') + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, 'little')
            + (st.st_size & 0xFFFFFFFF).to_bytes(4, 'little'))


def renamed(code, filename):
    """`code` and every code object in it named `filename`."""
    consts = tuple(renamed(const, filename) if isinstance(const, types.CodeType) else const
                   for const in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def sources(root):
    """Every .py file in the library dirs of prefix `root` (each real dir
    once), sorted."""
    scheme = 'posix_prefix' if os.name == 'posix' else sysconfig.get_default_scheme()
    seen, found = set(), []
    for name in ('purelib', 'platlib'):
        top = sysconfig.get_path(name, scheme, vars={'base': root, 'platbase': root})
        if not os.path.isdir(top) or os.path.realpath(top) in seen:
            continue
        seen.add(os.path.realpath(top))
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            found.extend(os.path.join(folder, f) for f in files if f.endswith('.py'))
    return sorted(found)


def write_pyc(cfile, data, mode):
    os.makedirs(os.path.dirname(cfile), exist_ok=True)
    with open(os.open(cfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), 'wb') as out:
        out.write(data)


def from_cache(entry, final_name):
    """The code (after the header) of a .pyc named `final_name` from a
    cache entry, or None when there is no entry this interpreter can read."""
    try:
        with open(entry, 'rb') as cached:
            pyc = cached.read()
        code = marshal.loads(pyc[16:]) if pyc[:4] == MAGIC else None
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(code, types.CodeType):
        return None
    if code.co_filename == final_name:
        return pyc[16:]
    return marshal.dumps(renamed(code, final_name))


def compile_one(job):
    """Compile one source as compileall does, named `final_name`; its
    .pyc's path, or None when it does not compile (a .pyc that cannot be
    written fails the install)."""
    path, final_name = job
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return py_compile.compile(path, dfile=final_name, doraise=True)
        except py_compile.PyCompileError:
            return None


def keep(cfile, entry):
    """`cfile` into the cache as `entry`: a link, or a copy across file
    systems; nothing when the cache cannot take it (a full or read-only disk
    costs later builds a compile, never this one)."""
    temporary = '%s.%d.tmp' % (entry, os.getpid())
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        try:
            os.link(cfile, temporary)
        except OSError:
            with open(cfile, 'rb') as src, open(temporary, 'wb') as dst:
                dst.write(src.read())
        os.replace(temporary, entry)
    except OSError:
        if os.path.exists(temporary):
            os.unlink(temporary)


def main(cache, root, final):
    folder = os.path.join(cache, '%s-%s' % (sys.implementation.cache_tag, MAGIC.hex()))
    misses, taken = [], 0
    for path in sources(root):
        with open(path, 'rb') as source:
            data = source.read()
            st = os.fstat(source.fileno())
        final_name = os.path.join(final, os.path.relpath(path, root))
        entry = os.path.join(folder, hashlib.sha256(data).hexdigest() + '.pyc')
        body = from_cache(entry, final_name)
        if body is None:
            misses.append((path, final_name, entry))
            continue
        write_pyc(importlib.util.cache_from_source(path), header(data, st) + body,
                  (st.st_mode & 0o777) | 0o200)
        taken += 1
    compiled = failed = 0
    if misses:
        jobs = [(path, final_name) for path, final_name, _ in misses]
        workers = min(len(os.sched_getaffinity(0)), len(jobs) // 50 or 1)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for (_, _, entry), cfile in zip(misses, pool.map(compile_one, jobs, chunksize=32)):
                if cfile is None:
                    failed += 1
                    continue
                keep(cfile, entry)
                compiled += 1
    print('bytecode of %d files: %d from the cache, %d compiled, %d not compilable'
          % (taken + len(misses), taken, compiled, failed))


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit('usage: python -I bytecode.py CACHE ROOT FINAL')
    try:
        main(*sys.argv[1:])
    except OSError as err:
        sys.exit('bytecode of %s: %s' % (sys.argv[2], err))
