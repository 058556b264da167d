"""Time until the parallel contexts are ready, in local mode (no Slurm), on
a built stack, against ipyparallel's own `Cluster(n=N).start_and_connect_sync()`
measured in the same run.

Each figure is one login shell with `module load jupyterlab` doing one thing
(so each includes the same module load): stackgen's ipyparallel start
(ready = all N engines registered), stackgen's ipyparallel and dask started
together as the single-user launcher starts them (ready = both), and
ipyparallel's own Cluster API; every start is stopped before the next one.
Prints the median of --rounds and the ratios.

    .venv/bin/python bench/launch.py --prefix /tmp/stack [--engines 2] [--rounds 3] [--slurm]

With --slurm (root), the same inside a 2-node job on the tests' Slurm cluster
(tests/slurmcluster.py, started for the run), engines and workers on both
nodes through srun; the Cluster API's engines are local to the first node.
"""

from __future__ import annotations

import argparse
import re
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


# Inside the job: each figure from the first node, as the user would run it.
JOB = """#!/bin/bash -l
#SBATCH -N2 --ntasks-per-node={n} -o {out}
module use {modules} && module load jupyterlab || exit 1
export STACKGEN_SESSION_DIR={session}
t() {{ local s=$(date +%s.%N); "$@" >/dev/null || exit 1; echo "$(date +%s.%N) - $s" | bc; }}
for i in $(seq {rounds}); do
  echo "stackgen ipyparallel $(t stackgen parallel start ipyparallel --procs-per-node {n})"
  stackgen parallel stop >/dev/null
  echo "stackgen both $(t sh -c 'stackgen parallel start ipyparallel --procs-per-node {n} & a=$!; \
stackgen parallel start dask --tasks-per-node {n} --threads-per-task 1 & b=$!; wait $a && wait $b')"
  stackgen parallel stop >/dev/null
  echo "Cluster API $(t python -c '{own}')"
done
"""


def on_slurm(prefix: Path, n: int, rounds: int) -> dict[str, list[float]]:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from slurmcluster import SlurmCluster
    figures: dict[str, list[float]] = {}
    with SlurmCluster(shared=(prefix,) if str(prefix).startswith("/tmp/") else ()) as cluster:
        out = cluster.scratch / "launch.out"
        script = JOB.format(n=n, out=out, modules=prefix / "modules" / "all", rounds=rounds,
                            session=cluster.scratch / "session", own=OWN_CLUSTER.format(n=2 * n))
        job = cluster.run(["sbatch", "--parsable"], input=script).stdout.strip()
        state = cluster.wait_for_job(job, timeout=1800)
        text = out.read_text()
        if state != "COMPLETED":
            raise SystemExit(f"the job ended {state}:\n{text[-3000:]}")
        for line in text.splitlines():
            found = re.match(r"(stackgen ipyparallel|stackgen both|Cluster API) ([0-9.]+)$", line)
            if found:
                figures.setdefault(found.group(1), []).append(float(found.group(2)))
        if len(figures) != 3:
            raise SystemExit(f"figures missing from the job's output:\n{text[-3000:]}")
    return figures


def report(figures: dict[str, list[float]], where: str, rounds: int) -> None:
    median = {k: statistics.median(v) for k, v in figures.items()}
    print(f"{where}, median of {rounds} (s):")
    for name, values in figures.items():
        print(f"  {name:22} {median[name]:6.2f}   ({', '.join(f'{v:.2f}' for v in values)})")
    base = median["Cluster API"]
    print(f"ratio to ipyparallel's Cluster API: ipyparallel {median['stackgen ipyparallel'] / base:.2f}x, "
          f"both contexts {median['stackgen both'] / base:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, required=True, help="a built stack (stackgen build --prefix)")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slurm", action="store_true", help="in a 2-node job on the tests' Slurm cluster")
    args = parser.parse_args()
    n = args.engines
    if args.slurm:
        report(on_slurm(args.prefix, n, args.rounds),
               f"2-node Slurm job, {n} engines and {n} dask workers per node", args.rounds)
        return
    ipp = f"stackgen parallel start ipyparallel --procs-per-node {n} >/dev/null"
    dask = f"stackgen parallel start dask --tasks-per-node {n} --threads-per-task 1 >/dev/null"
    stop = "stackgen parallel stop >/dev/null"
    figures: dict[str, list[float]] = {"stackgen ipyparallel": [], "stackgen both": [], "Cluster API": []}
    with tempfile.TemporaryDirectory(prefix="stackgen-bench-launch-") as tmp:
        home = Path(tmp)
        try:
            for _ in range(args.rounds):
                figures["stackgen ipyparallel"].append(shell(args.prefix, home, ipp))
                shell(args.prefix, home, stop)
                both = f"{ipp} & a=$!; {dask} & b=$!; wait $a && wait $b"
                figures["stackgen both"].append(shell(args.prefix, home, both))
                shell(args.prefix, home, stop)
                figures["Cluster API"].append(shell(args.prefix, home, "python -c " + shlex.quote(
                    OWN_CLUSTER.format(n=n))))
        finally:    # a failed round leaves nothing running
            shell(args.prefix, home, stop + " || true")
    report(figures, f"local mode, {n} engines and {n} dask workers", args.rounds)


if __name__ == "__main__":
    main()
