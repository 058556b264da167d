"""Time until the parallel contexts are ready, in local mode (no Slurm), on
a built stack, against ipyparallel's own `Cluster(n=N).start_and_connect_sync()`
measured in the same run.

Each figure is one login shell with `module load jupyterlab` doing one thing
(so each includes the same module load): stackgen's ipyparallel start
(ready = all N engines registered), stackgen's ipyparallel and dask started
together as the single-user launcher starts them (ready = both), and
ipyparallel's own Cluster API; every start is stopped before the next one.
Prints the median of --rounds and the ratios.

    .venv/bin/python bench/launch.py --prefix /tmp/stack [--engines 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

OWN_CLUSTER = ("import ipyparallel as ipp; c = ipp.Cluster(n={n}); rc = c.start_and_connect_sync(); "
               "assert len(rc.ids) == {n}; rc.close(); c.stop_cluster_sync()")


def shell(prefix: Path, home: Path, script: str) -> float:
    modules = shlex.quote(str(prefix / "modules" / "all"))
    start = time.perf_counter()
    done = subprocess.run(["bash", "-l", "-c", f"module use {modules} && module load jupyterlab && {{ {script}; }}"],
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                               "STACKGEN_SESSION_DIR": str(home / "session")},
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {script}\n{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, required=True, help="a built stack (stackgen build --prefix)")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.engines
    ipp = f"stackgen parallel start ipyparallel --procs-per-node {n} >/dev/null"
    dask = f"stackgen parallel start dask --tasks-per-node {n} --threads-per-task 1 >/dev/null"
    stop = "stackgen parallel stop >/dev/null"
    figures: dict[str, list[float]] = {"stackgen ipyparallel": [], "stackgen both": [], "Cluster API": []}
    with tempfile.TemporaryDirectory(prefix="stackgen-bench-launch-") as tmp:
        home = Path(tmp)
        for _ in range(args.rounds):
            figures["stackgen ipyparallel"].append(shell(args.prefix, home, ipp))
            shell(args.prefix, home, stop)
            both = f"{ipp} & a=$!; {dask} & b=$!; wait $a && wait $b"
            figures["stackgen both"].append(shell(args.prefix, home, both))
            shell(args.prefix, home, stop)
            figures["Cluster API"].append(shell(args.prefix, home, "python -c " + shlex.quote(
                OWN_CLUSTER.format(n=n))))
    median = {k: statistics.median(v) for k, v in figures.items()}
    print(f"local mode, {n} engines and {n} dask workers, median of {args.rounds} (s):")
    for name, values in figures.items():
        print(f"  {name:22} {median[name]:6.2f}   ({', '.join(f'{v:.2f}' for v in values)})")
    base = median["Cluster API"]
    print(f"ratio to ipyparallel's Cluster API: ipyparallel {median['stackgen ipyparallel'] / base:.2f}x, "
          f"both contexts {median['stackgen both'] / base:.2f}x")


if __name__ == "__main__":
    main()
