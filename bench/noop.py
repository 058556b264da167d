"""No-op and one-package rebuilds of the reference stack, in one run.

Builds the stack into a temporary prefix (from a copy of the spec, its lock
and easyconfigs), then times `stackgen build` again with nothing changed
(best of --rounds; it must start no EasyBuild), against the time of
`stackgen validate` as the floor of any stackgen command. Then adds one
requirement to one module of the copy (--change, default
`dask:toolz==1.0.0`: an older toolz, which lives in the dask module),
re-locks it with uv (network) and builds again, printing which modules
were rebuilt and how long that took.

    XDG_CACHE_HOME=... .venv/bin/python bench/noop.py [--rounds 5] [--change MODULE:REQUIREMENT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def stackgen(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "stackgen", *args], cwd=cwd,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"stackgen {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result


def copy_spec(folder: Path) -> Path:
    data = yaml.safe_load((REPO / "stack.yaml").read_text())
    data["base"]["modulepath"] = [str(REPO / p) for p in data["base"]["modulepath"]]
    folder.mkdir()
    (folder / "stack.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for sub in ("lockfiles", "easyconfigs"):
        shutil.copytree(REPO / sub, folder / sub)
    return folder


def add_requirement(folder: Path, module: str, requirement: str) -> None:
    path = folder / "stack.yaml"
    data = yaml.safe_load(path.read_text())
    data["modules"][module]["packages"].append(requirement)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--change", default="dask:toolz==1.0.0",
                        help="MODULE:REQUIREMENT added to that module before the rebuild")
    args = parser.parse_args()
    module, requirement = args.change.split(":", 1)
    work = Path(tempfile.mkdtemp(prefix="bench-noop-", dir="/tmp"))
    work.chmod(0o755)
    try:
        spec = copy_spec(work / "spec")
        prefix = work / "prefix"
        first, _ = stackgen("build", "--prefix", str(prefix), "--json", cwd=spec)
        print(f"full build             {first:7.2f} s")
        floor = min(stackgen("validate", cwd=spec)[0] for _ in range(args.rounds))
        times = []
        for _ in range(args.rounds):
            elapsed, result = stackgen("build", "--prefix", str(prefix), "--json", cwd=spec)
            built = json.loads(result.stdout)["built"]
            assert built == [] and "EasyBuild" not in result.stderr, result.stderr
            times.append(elapsed)
        print(f"no-op build            {min(times):7.2f} s  (best of {args.rounds}; built nothing, "
              f"no EasyBuild); stackgen validate {floor:.2f} s, ratio {min(times) / floor:.1f}x")
        add_requirement(spec, module, requirement)
        relock, _ = stackgen("lock", "--resolver", "uv", cwd=spec)
        elapsed, result = stackgen("build", "--prefix", str(prefix), "--json", cwd=spec)
        built = json.loads(result.stdout)["built"]
        print(f"after adding {requirement} to {module} (re-locked with uv in {relock:.1f} s):")
        print(f"  rebuild              {elapsed:7.2f} s  rebuilt {len(built)} of "
              f"{len(json.loads(result.stdout)['modules'])} modules: {', '.join(built) or 'none'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
