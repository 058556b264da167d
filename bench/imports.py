"""Import cost of the module layout against one flat prefix, in one run.

`python -c "import jupyterlab, dask.distributed, ipyparallel"` in a login
shell after `module load jupyterlab` (one PYTHONPATH entry per module of
the stack), and the same after loading only the base with the same wheels
installed by one `pip install --prefix` (one PYTHONPATH entry). Prints the
best wall time of --rounds runs and the file-metadata system calls of one
run (`strace -f -c`: the stat family and openat, which on a parallel file
system each cost a metadata server round trip), and the ratios module/flat.

    XDG_CACHE_HOME=... .venv/bin/python bench/imports.py --prefix PREFIX [--rounds 5]

PREFIX is a `stackgen build --prefix` of the stack; the flat prefix is
made in a temporary folder from the wheelhouse.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import tempfile
from pathlib import Path

from reference import DEFAULT_SPEC, pip_install_flat, reference  # noqa: E402

from stackgen.common.run import run  # noqa: E402

IMPORTS = "import jupyterlab, dask.distributed, ipyparallel"
METADATA_CALLS = ("stat", "lstat", "fstat", "newfstatat", "statx", "fstatat64", "openat", "open",
                  "access", "faccessat", "faccessat2", "readlink", "getcwd")
STRACE = "/usr/bin/strace"


def login(script: str) -> str:
    """`bash -l -c script` with Lmod, as a user's shell; its stdout+stderr."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": tempfile.gettempdir()}
    return run(["bash", "-l", "-c", script], env=env, describe="login shell").output


def measure(setup: str, rounds: int, workdir: Path) -> tuple[float, dict[str, int], int]:
    """(best wall seconds, syscall counts, PYTHONPATH entries) after `setup`."""
    python = shlex.join(["python", "-c", IMPORTS])
    trace = workdir / "strace.txt"
    timer = "\n".join(["import subprocess, time", "best = 1e9",
                        f"for _ in range({rounds}):",
                        "    t = time.perf_counter()",
                        f"    subprocess.run({['python', '-c', IMPORTS]!r}, check=True)",
                        "    best = min(best, time.perf_counter() - t)", "print('best', best)"])
    out = login(f"{setup} && cd {shlex.quote(str(workdir))} && {python} && "
                f"echo entries $(echo \"$PYTHONPATH\" | tr ':' '\\n' | grep -c .) && "
                f"python -c {shlex.quote(timer)} && "
                f"{STRACE} -f -c -o {shlex.quote(str(trace))} {python}")
    best = float(re.search(r"^best (\S+)$", out, re.M).group(1))
    entries = int(re.search(r"^entries (\d+)$", out, re.M).group(1))
    return best, parse_strace(trace.read_text()), entries


def parse_strace(text: str) -> dict[str, int]:
    """syscall -> calls, from the table `strace -c` writes."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[-1] not in ("total", "syscall") and fields[3].isdigit():
            counts[fields[-1]] = int(fields[3])
    return counts


def metadata(counts: dict[str, int]) -> int:
    return sum(n for name, n in counts.items() if name in METADATA_CALLS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", type=Path, required=True, help="a stackgen build prefix")
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ref = reference(args.spec)
    stack = ref.stack
    work = Path(tempfile.mkdtemp(prefix="bench-imports-", dir="/tmp"))
    work.chmod(0o755)
    try:
        flat = work / "flat"
        pip_install_flat(ref, flat)
        site = next(flat.glob("lib/python*/site-packages"))
        uses = " ".join(f"module use {shlex.quote(str(p.resolve()))};"
                        for p in stack.base.modulepath)
        setups = {
            "module": f"module use {shlex.quote(str(args.prefix / 'modules' / 'all'))} && "
                      "module load jupyterlab",
            "flat": f"{uses} module load {shlex.quote(stack.base.module)} && "
                    f"export PYTHONPATH={shlex.quote(str(site))}",
        }
        results = {name: measure(setup, args.rounds, work) for name, setup in setups.items()}
        for name, (wall, counts, entries) in results.items():
            top = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
                            if k in METADATA_CALLS)
            print(f"{name:6s} {wall:6.3f} s  {metadata(counts):6d} metadata calls "
                  f"({entries} PYTHONPATH entries; {top})")
        (mw, mc, _), (fw, fc, _) = results["module"], results["flat"]
        print(f"ratio module/flat: wall {mw / fw:.2f}x, metadata calls {metadata(mc) / metadata(fc):.3f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
