"""Build the reference stack with `stackgen build` and install the same
wheels with one `pip install --no-deps` into a prefix, in one run.

stackgen builds once and then rebuilds --rounds times, each into a fresh
prefix, with a cache of its own
(a temporary XDG_CACHE_HOME that shares only the downloads: the verified
wheelhouse, npm tarballs and yarn's download cache):
  first    nothing built before: uv unpacks every wheel into its cache, and
           node builds the JupyterLab app dir for the source extensions;
  rebuild  the same stack again, as a site rebuilds after any change: uv
           copies from its cache of unpacked wheels, and the app dir built
           the first time (same JupyterLab, node and tarballs) is copied.
Each stackgen build is timed against the mean of the pip runs just before
and after it (this disk's speed drifts by tens of per cent within minutes),
each time until its files are on the disk (sync before and after).
Prints the wall time of each, their ratio to pip, and stackgen's time per
module and per EasyBuild step (modules build side by side, so their times
overlap: a module's run starts while the modules it loads build, installs,
and is "waiting" until they are built; the app-dir build is in
"postprocessing").
pip and stackgen both compile bytecode. With --stock it also builds the
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

from reference import DEFAULT_SPEC, Reference, pip_install_flat, reference  # noqa: E402

from stackgen.common.run import run  # noqa: E402
from stackgen.common.ui import default_cache  # noqa: E402
from stackgen.site import build as build_mod  # noqa: E402
from stackgen.site import lmod  # noqa: E402
from stackgen.site import render as render_mod  # noqa: E402

_STEP = re.compile(r"^==> (\S+): (?!\.\.\. )(.*?)\.\.\.$")


def durably(step) -> float:
    """Seconds until `step()`'s files are on the disk: the page cache is
    flushed before (so no step pays for the one before it) and after."""
    os.sync()
    start = time.perf_counter()
    step()
    os.sync()
    return time.perf_counter() - start


def one_shot_pip(ref: Reference, prefix: Path) -> float:
    return durably(lambda: pip_install_flat(ref, prefix))


# what the bench's own cache shares with the real one: downloads only
SHARED_DOWNLOADS = ("wheelhouse", "files", "npm-published", "eb/yarn-cache")


def own_cache(work: Path) -> Path:
    """An XDG_CACHE_HOME whose stackgen cache links the real one's downloads."""
    root = work / "cache"
    for sub in SHARED_DOWNLOADS:
        real = default_cache() / sub
        if real.exists():
            (root / "stackgen" / sub).parent.mkdir(parents=True, exist_ok=True)
            (root / "stackgen" / sub).symlink_to(real)
    return root


def pip_round(ref: Reference, work: Path, n: int) -> float:
    """One timed pip baseline (every stackgen build is timed against the pip
    runs just before and after it: the disk's speed drifts). Nothing is
    deleted before the end: freeing blocks slows the disk for a while."""
    seconds = one_shot_pip(ref, work / f"flat-{n}")
    print(f"one-shot pip install      {seconds:6.1f} s  ({len(ref.wheels)} wheels into one prefix)")
    return seconds


def stackgen_build(spec: Path, prefix: Path,
                   cache: Path) -> tuple[float, list[tuple[float, str]]]:
    """Wall time of `stackgen build`, and each output line with its time."""
    lines: list[tuple[float, str]] = []
    start = 0.0

    def build() -> None:
        nonlocal start
        start = time.perf_counter()
        run([sys.executable, "-m", "stackgen", "build", "--prefix", str(prefix)],
            cwd=spec.parent, env={**os.environ, "XDG_CACHE_HOME": str(cache)},
            describe="stackgen build",
            on_line=lambda ln: lines.append((time.perf_counter() - start, ln)))
    return durably(build), lines


def report(label: str, total: float, lines: list[tuple[float, str]], pip: float) -> float:
    """Print one build's figures; return its ratio to pip without the
    postprocessing step (the app-dir build with node, which pip does not do;
    it lies on the critical path, at the end of the jupyterlab module)."""
    steps = step_times(lines)
    lab = sum(s for (_, step), s in steps.items() if step == "postprocessing")
    print(f"stackgen build, {label:8s} {total:6.1f} s  ratio to pip {total / pip:.2f}x "
          f"(app dir and site files, the postprocessing step: {lab:.1f} s; "
          f"without it {(total - lab) / pip:.2f}x)")
    for name, seconds in module_times(lines).items():
        detail = ", ".join(f"{step} {s:.1f}" for (mod, step), s in steps.items()
                           if mod == name and s >= 0.5)
        print(f"  {name:24s} {seconds:6.1f} s  ({detail})")
    return (total - lab) / pip


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
    """(module, step) -> seconds, from each step line of a module to its next line."""
    out: dict[tuple[str, str], float] = {}
    for own in module_lines(lines).values():
        for (t, line), (t_next, _) in zip(own, own[1:]):
            match = _STEP.match(line)
            if match:
                step = match.group(2)
                key = (match.group(1), "waiting" if step.startswith("waiting for ") else step)
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
        labels = ["first", *(f"rebuild {n}" for n in range(1, args.rounds + 1))]
        pips = [pip_round(ref, work, 0)]
        ratios, without_lab = [], []
        for n, label in enumerate(labels, start=1):
            total, lines = stackgen_build(spec, work / f"stack-{n}", cache)
            pips.append(pip_round(ref, work, n))
            pip = (pips[-2] + pips[-1]) / 2
            without_lab.append(report(label, total, lines, pip))
            ratios.append(total / pip)
        print(f"ratio to pip: first build {ratios[0]:.2f}x ({without_lab[0]:.2f}x without the "
              f"app-dir build), rebuild median of {args.rounds} "
              f"{statistics.median(ratios[1:]):.2f}x")
        if args.stock:
            stock = stock_build(ref, work / "stock", work)
            print(f"stock PythonBundle        {stock:6.1f} s  ratio to pip {stock / pip:.2f}x, "
                  f"to stackgen's last rebuild {stock / total:.1f}x")
    finally:
        if args.keep:
            print(f"prefixes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
