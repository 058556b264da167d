"""Build the reference stack with `stackgen build` against the installers
it stands in for, the same wheels into one prefix, all in one run.

stackgen builds once and then rebuilds --rounds times, each into a fresh
prefix, with a cache of its own (a temporary XDG_CACHE_HOME that shares
only the verified wheelhouse: the lock's wheels and npm tarballs):
  first    cold caches: uv unpacks every wheel into its cache, yarn fills
           its cache from the lock's tarballs (served offline) and node
           builds each source extension as a prebuilt extension against
           JupyterLab's core, into the jupyterlab module's
           share/jupyter/labextensions; timed against one-shot
           `pip install --no-deps` runs of the same wheels;
  rebuild  the same stack again, as a site rebuilds after any change, caches
           warm (uv's unpacked wheels, the compiled bytecode, yarn's cache,
           the built source extensions, the modules' checks passed for the
           same inputs, the wheelhouse's digests), then once with --recheck (every import and
           pip check run again): each timed against a bare
           `uv pip install --no-deps --compile-bytecode` of the same wheels
           into a prefix (the installer stackgen itself uses, its own cache
           warmed once before).
Each stackgen build is timed against the mean of the baseline runs just
before and after it (this disk's speed drifts by tens of per cent within
minutes), each until its files are on the disk (sync before and after).
Prints the wall time of each, its ratio to its baseline, and stackgen's
time per module and per EasyBuild step (modules build side by side, so
their times overlap: a module's run starts while the modules it loads
build, installs, and is "waiting" until they are built; the source
extensions' build is in "postprocessing" and its own lines).
Every install ends with bytecode: the baselines compile it; stackgen
compiles it in the first build and takes it from its cache after. With --stock it also builds the
same easyconfigs with EasyBuild's own PythonBundle (one pip call and one
import check per package; site files and source extensions left out, so it
does less work), which takes minutes.

    .venv/bin/python bench/build.py [--spec stack.yaml] [--rounds 3] [--stock] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reference import DEFAULT_SPEC, Reference, pip_install_flat, reference, uv_install_flat  # noqa: E402

from stackgen.common.run import run  # noqa: E402
from stackgen.common.ui import default_cache  # noqa: E402
from stackgen.site import build as build_mod  # noqa: E402
from stackgen.site import lmod  # noqa: E402
from stackgen.site import render as render_mod  # noqa: E402

_STEP = re.compile(r"^==> (\S+): (?!\.\.\. )(.*?)\.\.\.$")
# StackgenBundle's lines while it builds a source extension (jlpm, then node)
# (its jlpm install runs from the ready step on, beside the wheels' installs
# and the wait; what is left on the critical path is the builder's run and
# any wait for that install to end)
_EXTENSION_LINE = re.compile(r"^==> (\S+): (\S+@\S+): (installing|building|waiting) ")
_EXTENSION_STEP = re.compile(r"^\S+@\S+ (building|waiting)$")


def durably(step) -> float:
    """Seconds until `step()`'s files are on the disk: the page cache is
    flushed before (so no step pays for the one before it) and after."""
    os.sync()
    start = time.perf_counter()
    step()
    os.sync()
    return time.perf_counter() - start


def own_cache(work: Path) -> Path:
    """An XDG_CACHE_HOME whose stackgen cache holds the real one's wheelhouse
    (hard links: a file the build writes there replaces the link, never the
    real one's file) and nothing else."""
    root = work / "cache"
    real = default_cache() / "wheelhouse"
    own = root / "stackgen" / "wheelhouse"
    own.mkdir(parents=True)
    for file in real.iterdir():
        if file.is_file():
            os.link(file, own / file.name)
    return root


class Baselines:
    """The timed baseline installs of the run, each into a prefix of its own
    (every stackgen build is timed against the runs just before and after
    it: the disk's speed drifts). Nothing is deleted before the end: freeing
    blocks slows the disk for a while."""

    def __init__(self, ref: Reference, work: Path):
        self.ref, self.work, self.count = ref, work, 0
        self.uv_cache = work / "uv-cache"

    def _prefix(self, kind: str) -> Path:
        self.count += 1
        return self.work / f"{kind}-{self.count}"

    def pip(self) -> float:
        seconds = durably(lambda: pip_install_flat(self.ref, self._prefix("pip")))
        print(f"one-shot pip install       {seconds:6.1f} s  "
              f"({len(self.ref.wheels)} wheels into one prefix)")
        return seconds

    def uv(self, label: str = "") -> float:
        seconds = durably(lambda: uv_install_flat(self.ref, self._prefix("uv"), self.uv_cache))
        print(f"uv pip install             {seconds:6.1f} s  "
              f"({len(self.ref.wheels)} wheels into one prefix{label})")
        return seconds


def stackgen_build(spec: Path, prefix: Path, cache: Path,
                   *options: str) -> tuple[float, list[tuple[float, str]]]:
    """Wall time of `stackgen build OPTIONS`, and each output line with its time."""
    lines: list[tuple[float, str]] = []
    start = 0.0

    def build() -> None:
        nonlocal start
        start = time.perf_counter()
        run([sys.executable, "-m", "stackgen", "build", "--prefix", str(prefix), *options],
            cwd=spec.parent, env={**os.environ, "XDG_CACHE_HOME": str(cache)},
            describe="stackgen build",
            on_line=lambda ln: lines.append((time.perf_counter() - start, ln)))
    return durably(build), lines


def report(label: str, total: float, lines: list[tuple[float, str]], baseline: float,
           against: str) -> tuple[float, float]:
    """Print one build's figures; return its ratio to the baseline, with and
    without the source extensions' part of the critical path (node's work,
    which an installer does not do: the builder's run and any wait for the
    jlpm install, in the jupyterlab module's postprocessing)."""
    steps = step_times(lines)
    nodejs = sum(s for (_, step), s in steps.items() if _EXTENSION_STEP.match(step))
    print(f"stackgen build, {label:9s} {total:6.1f} s  ratio to {against} {total / baseline:.2f}x "
          f"(source extensions on the critical path {nodejs:.1f} s; without them "
          f"{(total - nodejs) / baseline:.2f}x)")
    for name, seconds in module_times(lines).items():
        detail = ", ".join(f"{step} {s:.1f}" for (mod, step), s in steps.items()
                           if mod == name and s >= 0.5)
        print(f"  {name:24s} {seconds:6.1f} s  ({detail})")
    return total / baseline, (total - nodejs) / baseline


def module_lines(lines: list[tuple[float, str]]) -> dict[str, list[tuple[float, str]]]:
    """Each module's own progress lines with their times (modules build side
    by side, so their lines interleave)."""
    out: dict[str, list[tuple[float, str]]] = {}
    for t, line in lines:
        match = re.match(r"^==> (?:building )?(\S+?)(?::| \()", line)
        if match and "/" in match.group(1):
            out.setdefault(match.group(1), []).append((t, line))
    return out


def step_times(lines: list[tuple[float, str]]) -> dict[tuple[str, str], float]:
    """(module, step) -> seconds, from each step line of a module to its next
    line; a source extension's lines ("NAME@VERSION: installing ...",
    "...: building ...") are steps of their own."""
    out: dict[tuple[str, str], float] = {}
    for own in module_lines(lines).values():
        for (t, line), (t_next, _) in zip(own, own[1:]):
            match = _STEP.match(line)
            ext = _EXTENSION_LINE.match(line)
            if ext:
                key = (ext.group(1), f"{ext.group(2)} {ext.group(3)}")
            elif match:
                step = match.group(2)
                key = (match.group(1), "waiting" if step.startswith("waiting for ") else step)
            else:
                continue
            out[key] = out.get(key, 0.0) + t_next - t
    return out


def module_times(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Module -> seconds from its "building" line to its last line."""
    return {name: own[-1][0] - own[0][0] for name, own in module_lines(lines).items()}


def stock_build(ref: Reference, prefix: Path, work: Path) -> float:
    """The same easyconfigs with easyblock PythonBundle, one eb run per module."""
    stack, current = ref.stack, ref.lock
    folder = work / "stock-easyconfigs"
    folder.mkdir()
    plans = render_mod.plan(stack, current)
    modules = [build_mod.Module.of_plan(mp, folder) for mp in plans]
    for module in modules:
        text = (stack.root / "easyconfigs" / module.easyconfig.name).read_text()
        text = text.replace("easyblock = 'StackgenBundle'", "easyblock = 'PythonBundle'")
        text = re.sub(r"^(site_json_files|lab_source_extensions) = .*?^[\]}]\n", "", text,
                      flags=re.S | re.M)
        module.easyconfig.write_text(text)
    eb = build_mod.EasyBuild(prefix=prefix, easyconfigs=folder, wheelhouse=ref.wheelhouse,
                             workdir=default_cache() / "eb", modulepath=stack.base.modulepath,
                             base_module=current.header.base_module,
                             base_python=current.header.python_version)
    eb.write_metadata()
    return durably(lambda: build_mod.build_modules(eb, [(m, "not installed") for m in modules],
                                                  lmod_cmd=lmod.lmod_cmd(),
                                                  progress=lambda message: None,
                                                  start_early=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--stock", action="store_true", help="also build with stock PythonBundle")
    parser.add_argument("--keep", action="store_true", help="keep the prefixes")
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="rebuilds after the first build (default 3)")
    args = parser.parse_args()
    spec = args.spec.resolve()
    ref = reference(spec)
    missing = [w.name for w in ref.wheels if not w.exists()]
    if missing:
        print(f"the wheelhouse lacks {len(missing)} files: run `stackgen fetch` first")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-build-", dir="/tmp"))
    try:
        cache = own_cache(work)
        base = Baselines(ref, work)
        # the first build, cold, against pip
        before = base.pip()
        total, lines = stackgen_build(spec, work / "stack-0", cache)
        pip = (before + base.pip()) / 2
        first, first_nodejs = report("first", total, lines, pip, "pip")
        # the rebuilds, caches warm, against uv with its own cache warm
        base.uv(", its cache cold: not a baseline")
        uvs, ratios = [base.uv()], []
        for n in range(1, args.rounds + 1):
            total, lines = stackgen_build(spec, work / f"stack-{n}", cache)
            uvs.append(base.uv())
            ratios.append(report(f"rebuild {n}", total, lines, (uvs[-2] + uvs[-1]) / 2, "uv")[0])
        # once more with every check run again, as a build whose modules'
        # checks were never recorded (or --recheck) runs them
        total, lines = stackgen_build(spec, work / "stack-recheck", cache, "--recheck")
        uvs.append(base.uv())
        recheck = report("--recheck", total, lines, (uvs[-2] + uvs[-1]) / 2, "uv")[0]
        print(f"ratio to pip: first build {first:.2f}x "
              f"(without building the source extensions {first_nodejs:.2f}x)")
        print(f"ratio to uv: rebuild median of {args.rounds} {statistics.median(ratios):.2f}x "
              f"({', '.join(f'{r:.2f}x' for r in ratios)}); with --recheck {recheck:.2f}x")
        if args.stock:
            stock = stock_build(ref, work / "stock", work)
            print(f"stock PythonBundle         {stock:6.1f} s  ratio to pip {stock / pip:.2f}x, "
                  f"to stackgen's last rebuild {stock / total:.1f}x")
    finally:
        if args.keep:
            print(f"prefixes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
