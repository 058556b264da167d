"""StackgenBundle's bytecode (stackgen/site/easyblocks/bytecode.py), run as
the easyblock runs it, by a real interpreter on real files: the .pyc files
compileall writes, named by the install's final path, and a source compiled
once taken from the cache by every later install, wherever it goes."""

from __future__ import annotations

import compileall
import marshal
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import types
from pathlib import Path

import pytest

from stackgen.site.easyblocks.install import bytecode_argv

from conftest import small_disk

SOURCES = {
    "pkg/__init__.py": "VALUE = 1\n",
    "pkg/mod.py": "def outer():\n    def inner():\n        raise RuntimeError('here')\n    return inner\n"
                  "class K:\n    def m(self):\n        return [x for x in range(3)]\n",
    "pkg/empty.py": "",
    "pkg/py2.py": "print 'vendored python 2'\n",             # compiles nowhere: no .pyc
    "top.py": "import pkg\n",
}


def site_dir(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", "posix_prefix",
                                   vars={"base": str(prefix), "platbase": str(prefix)}))


def install(prefix: Path) -> Path:
    """The SOURCES, as an installer unpacks them into `prefix`."""
    site = site_dir(prefix)
    for relpath, text in SOURCES.items():
        (site / relpath).parent.mkdir(parents=True, exist_ok=True)
        (site / relpath).write_text(text)
    return site


def installed(prefix: Path) -> tuple[Path, Path]:
    """An install of the SOURCES into `prefix`, used from there."""
    install(prefix)
    return prefix, prefix


def bytecode(cache: Path, prefix: Path, final: Path) -> str:
    result = subprocess.run(bytecode_argv(sys.executable, str(cache), str(prefix), str(final)),
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def pycs(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in site.rglob("*.pyc")}


def filenames(code: types.CodeType) -> set[str]:
    return {code.co_filename}.union(*(filenames(c) for c in code.co_consts
                                      if isinstance(c, types.CodeType)))


def as_compileall_writes(prefix: Path) -> dict[str, bytes]:
    """What uv's and pip's compile step writes for the same files."""
    site = site_dir(prefix)
    for path in sorted(site.rglob("*.py")):
        compileall.compile_file(str(path), force=True, quiet=2)
    return pycs(site)


@pytest.mark.parametrize("epoch", [None, "1700000000"], ids=["timestamp", "SOURCE_DATE_EPOCH"])
def test_the_pycs_are_compileall_s_named_by_the_final_path_and_taken_from_the_cache_after(
        tmp_path, monkeypatch, epoch):
    if epoch:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)     # hash-based, as py_compile does
    else:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    cache = tmp_path / "cache"
    for taken, name in ((0, "first"), (4, "second")):
        prefix, final = tmp_path / "staging" / name, tmp_path / "final" / name
        site = install(prefix)
        assert bytecode(cache, prefix, final) == \
            f"bytecode of 5 files: {taken} from the cache, {4 - taken} compiled, 1 not compilable"
        made = pycs(site)
        reference = tmp_path / "reference" / name
        shutil.copytree(prefix, reference, ignore=shutil.ignore_patterns("__pycache__"))
        expected = as_compileall_writes(reference)
        assert sorted(made) == sorted(expected) and len(made) == 4
        for relpath, pyc in made.items():
            # the same header (the copy kept the sources' mtimes) and the same code
            assert pyc[:16] == expected[relpath][:16], relpath
            assert marshal.loads(pyc[16:]) == marshal.loads(expected[relpath][16:]), relpath
            source = relpath.replace("__pycache__/", "").rsplit(".", 2)[0] + ".py"
            assert filenames(marshal.loads(pyc[16:])) == {str(site_dir(final) / source)}


def test_python_takes_the_pycs_as_they_are_and_its_tracebacks_name_the_sources(tmp_path):
    cache = tmp_path / "cache"
    bytecode(cache, *installed(tmp_path / "one"))
    prefix = tmp_path / "two"
    site = install(prefix)
    bytecode(cache, prefix, tmp_path / "elsewhere")
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*.pyc")}
    time.sleep(0.01)
    script = ("import top, pkg.mod, pkg.empty, traceback\n"
              "try:\n    pkg.mod.outer()()\nexcept RuntimeError:\n"
              "    print(traceback.format_exc())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(site)), check=True)
    assert f'File "{site / "pkg" / "mod.py"}", line 3, in inner' in result.stdout
    # a .pyc Python found stale it would have written again (the folder is writable)
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*.pyc")} == before


def test_an_entry_this_interpreter_cannot_read_is_compiled_again_and_replaced(tmp_path):
    cache = tmp_path / "cache"
    bytecode(cache, *installed(tmp_path / "one"))
    entries = sorted(cache.glob("*/*.pyc"))
    assert len(entries) == 4 and all(e.stat().st_nlink == 2 for e in entries)
    for entry in entries:
        data = entry.read_bytes()
        entry.unlink()
        entry.write_bytes(data[:20])          # cut short, as by a full disk
    assert bytecode(cache, *installed(tmp_path / "two")) == \
        "bytecode of 5 files: 0 from the cache, 4 compiled, 1 not compilable"
    assert all(e.stat().st_size > 20 for e in entries)
    assert bytecode(cache, *installed(tmp_path / "three")) == \
        "bytecode of 5 files: 4 from the cache, 0 compiled, 1 not compilable"


def test_entries_no_install_shares_are_dropped_after_a_month_unused(tmp_path):
    from stackgen.site.build import prune_cache
    cache = tmp_path / "bytecode"
    bytecode(cache, *installed(tmp_path / "one"))
    entries = sorted(cache.glob("*/*.pyc"))
    in_a_month = time.time() + 31 * 86400
    assert prune_cache(tmp_path, now=in_a_month) == []          # each is an installed .pyc
    shutil.rmtree(tmp_path / "one")
    assert prune_cache(tmp_path) == []                          # used today
    assert sorted(prune_cache(tmp_path, now=in_a_month)) == entries
    assert not list(cache.glob("*/*.pyc"))


def test_a_cache_on_another_file_system_holds_copies(tmp_path):
    with small_disk(tmp_path / "cache", "1m") as cache:
        bytecode(cache, *installed(tmp_path / "one"))
        entries = list(cache.glob("*/*.pyc"))
        assert len(entries) == 4 and all(e.stat().st_nlink == 1 for e in entries)
        assert bytecode(cache, *installed(tmp_path / "two")) == \
            "bytecode of 5 files: 4 from the cache, 0 compiled, 1 not compilable"


def test_a_full_cache_costs_a_compile_not_the_install(tmp_path):
    with small_disk(tmp_path / "cache", "4k") as cache:
        fill(cache)
        for name in ("one", "two"):
            assert bytecode(cache, *installed(tmp_path / name)) == \
                "bytecode of 5 files: 0 from the cache, 4 compiled, 1 not compilable"
            assert len(pycs(site_dir(tmp_path / name))) == 4
        assert not list(cache.rglob("*.tmp"))


def test_a_full_install_disk_fails_the_install_with_the_reason_not_a_traceback(tmp_path):
    with small_disk(tmp_path / "prefix", "64k") as prefix:
        install(prefix)
        fill(prefix)
        result = subprocess.run(bytecode_argv(sys.executable, str(tmp_path / "cache"), str(prefix),
                                              str(prefix)), capture_output=True, text=True)
        assert result.returncode == 1
        assert result.stderr.startswith(f"bytecode of {prefix}: [Errno 28] No space left on device")
        assert "Traceback" not in result.stderr


def fill(disk: Path) -> None:
    """Every byte of `disk` taken."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
