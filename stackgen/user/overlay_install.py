"""Making an overlay: resolve the user's extensions with every central
package as a fixed constraint, download and verify exactly what is missing,
check each lab extension against the central JupyterLab, install into a new
folder, and (for source extensions) rebuild a copy of the central app dir.

Runs in the jupyterlab module's own Python, as the user, with the central
packages visible to pip, so nothing central is ever installed again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stackgen.common import labbuild
from stackgen.common.download import Wanted, download
from stackgen.common.errors import CommandError, InputError, StackgenError
from stackgen.common.pypi import INDEX_URL, ReportedFile, conflict_lines, parse_pip_report
from stackgen.common.run import clean_env, run
from stackgen.user.overlay import outside_overlays

log = logging.getLogger("stackgen.user.overlay")


def parse_requirement(text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InputError(f"{text!r} is not a package requirement: {str(exc).splitlines()[0]}",
                         "name a PyPI package, optionally with a version: "
                         "jupyterlab-execute-time or 'jupyterlab-execute-time==3.2.0'") from None
    if req.url:
        raise InputError(f"{text!r} points at a URL", "name a package on PyPI")
    return req


def source_extension(spec: str) -> tuple[str, str, str]:
    """(requirement, npm name, version) of `--source SPEC`: an npm package
    (`name` or `name@version`) or a local tarball, named by its package.json."""
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            with tarfile.open(path) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("package.json")
                              and m.name.count("/") == 1)
                data = json.load(tar.extractfile(member))
            return str(path.absolute()), data["name"], data.get("version", "")
        except (tarfile.TarError, StopIteration, KeyError, ValueError) as exc:
            raise InputError(f"{spec} is not an npm package tarball ({exc})",
                             "give an npm package name, or a .tgz made by `npm pack`") from None
    name, _, version = spec[1:].partition("@") if spec.startswith("@") else spec.partition("@")
    name = "@" + name if spec.startswith("@") else name
    return spec, name, version


def central_distributions() -> dict[str, str]:
    """Every distribution this Python sees (central modules and the base),
    except those in the user's own overlays."""
    found: dict[str, str] = {}
    for dist in metadata.distributions(path=outside_overlays(sys.path)):
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in found:
            found[name] = dist.version
    return found


def installer_env() -> dict[str, str]:
    """The environment for pip: no ambient pip configuration, the central
    packages visible (PYTHONPATH without the user's overlays)."""
    central = outside_overlays(os.environ.get("PYTHONPATH", "").split(os.pathsep))
    env = clean_env()
    if central:
        env["PYTHONPATH"] = os.pathsep.join(central)
    return env


def plan(requirements: list[str], central: dict[str, str], workdir: Path, env: dict[str, str],
         index_url: str = INDEX_URL) -> list[ReportedFile]:
    """What pip would add for `requirements` with every central package fixed."""
    constraints = workdir / "central-constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(central.items())))
    report = workdir / "plan.json"
    try:
        run([sys.executable, "-m", "pip", "install", "--dry-run", "--report",
             str(report), "--only-binary", ":all:", "--index-url", index_url,
             "-c", str(constraints), *requirements],
            env=env, describe="resolving against the central stack (pip)",
            logfile=workdir / "plan.log")
    except CommandError as exc:
        raise explain(exc.output, central) from None
    planned = parse_pip_report(report.read_text())
    shadowed = sorted(p.name for p in planned if p.name in central)
    if shadowed:       # pip must never be asked to replace a central package
        raise InputError(f"installing would replace central packages: {', '.join(shadowed)}",
                         "choose a version of the extension that works with the central stack")
    return sorted(planned, key=lambda p: p.name)


def explain(output: str, central: dict[str, str]) -> StackgenError:
    lines = conflict_lines(output)
    if any("No matching distribution" in ln or "Could not find a version" in ln for ln in lines):
        missing = re.findall(r"No matching distribution found for (\S+)", output)
        return InputError(f"no package {' '.join(missing) or ''} on PyPI with a wheel for this "
                          "Python".replace("  ", " "),
                          "check the name (pip search is gone: see https://pypi.org) and that "
                          "the version exists; overlays take wheels only")
    if lines:
        pins = sorted({m for ln in lines for m in re.findall(r"\(constraint\) (\S+)", ln)})
        body = "\n".join("    " + ln for ln in lines)
        central_note = f" (central pins: {', '.join(pins)})" if pins else ""
        return InputError("the extension needs other versions of central packages than the "
                          f"central stack has{central_note}:\n{body}",
                          "an overlay never changes a central package: choose another version "
                          "of the extension, or ask the centre to add it to the stack")
    tail = "\n".join("    " + ln for ln in output.splitlines()[-10:] if ln.strip())
    return StackgenError(f"pip could not plan the overlay:\n{tail}",
                         "run again with --debug to see the whole output")


def fetch_planned(planned: list[ReportedFile], folder: Path) -> list[Path]:
    """Download each planned wheel, verified against the hash pip reported."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in planned:
        download(Wanted(item.file, item.url, f"sha256:{item.sha256}",
                        f"{item.name} {item.version}", "the same command again"), folder)
    return [folder / p.file for p in planned]


def labextensions_in(wheel: Path) -> dict[str, dict]:
    """Prebuilt lab extensions a wheel carries: name -> its package.json."""
    found = {}
    with zipfile.ZipFile(wheel) as whl:
        for member in whl.namelist():
            match = re.match(r"[^/]+\.data/data/share/jupyter/labextensions/(.+)/package\.json$",
                             member)
            if match:
                found[match.group(1)] = json.loads(whl.read(member))
    return found


def compatibility_errors(package_json: dict) -> list[str]:
    """JupyterLab's own compatibility rule for an extension against the
    central JupyterLab: each shared @jupyterlab/* range must overlap."""
    try:
        from jupyterlab.commands import _validate_compatibility
        from jupyterlab.coreconfig import _get_default_core_data
    except ImportError:
        raise StackgenError("JupyterLab is not importable here",
                            "run `module load jupyterlab` first") from None
    core = _get_default_core_data()
    deps = {**package_json.get("dependencies", {}), **package_json.get("peerDependencies", {})}
    return [f"{dep} {wanted} (central JupyterLab has {have})"
            for dep, have, wanted in _validate_compatibility(package_json.get("name", ""),
                                                             deps, core)]


def check_fits(wheels: list[Path]) -> dict[str, tuple[str, ...]]:
    """Lab extensions per wheel; refuses any that does not fit the central lab."""
    out = {}
    for wheel in wheels:
        exts = labextensions_in(wheel)
        for name, package_json in sorted(exts.items()):
            errors = compatibility_errors(package_json)
            if errors:
                raise InputError(f"{wheel.name}: its lab extension {name} does not fit the "
                                 "central JupyterLab: it asks for " + "; ".join(errors),
                                 "choose a version of the extension built for this JupyterLab "
                                 "(an extension for JupyterLab 3 does not load in 4)")
        out[wheel.name] = tuple(sorted(exts))
    return out


def install(wheels: list[Path], prefix: Path, env: dict[str, str], workdir: Path) -> None:
    if not wheels:
        return
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-warn-script-location", "--prefix", str(prefix), *map(str, wheels)],
        env=env, describe="installing into the overlay (pip)", logfile=workdir / "install.log")


def copy_app_dir(central: Path, target: Path) -> None:
    """The central app dir, cheaply: hard links where allowed (a user may not
    link files they do not own), else copies. static/ is left out: the rebuild
    writes it anew."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    shutil.copytree(central, target, copy_function=link_or_copy, symlinks=True,
                    ignore=lambda folder, names: ["static"] if Path(folder) == central else [])


def build_source(app_dir: Path, npm_specs: list[str], node_bin: Path, workdir: Path,
                 progress: Callable[[str], None]) -> None:
    """`jupyter labextension install` the npm packages into the copied app dir,
    then one `jupyter lab build` there; yarn's downloads stay in the work folder."""
    env = {**os.environ, **labbuild.environment(node_bin, workdir, os.environ.get("PATH", ""))}
    install, build = labbuild.commands(app_dir, npm_specs)
    progress(f"adding {', '.join(npm_specs)} to a copy of the central app dir")
    run(install, env=env, cwd=workdir, describe="jupyter labextension install",
        logfile=workdir / "labext.log")
    progress("rebuilding JupyterLab in the overlay (node; a minute or two)")
    run(build, env=env, cwd=workdir, describe="jupyter lab build",
        logfile=workdir / "lab-build.log", heartbeat=lambda s: progress(f"still building ({s:.0f} s)"))
    labbuild.drop_leftovers(app_dir)
