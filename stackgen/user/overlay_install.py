"""Making an overlay: resolve the user's extensions with every central
package as a fixed constraint, download and verify exactly what is missing,
check each lab extension against the central JupyterLab, install into a new
folder, and build source extensions as prebuilt ones into it (no app dir
copied, none rebuilt).

Runs in the jupyterlab module's own Python, as the user, with the central
packages visible to pip, so nothing central is ever installed again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tarfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stackgen.common import labbuild, npmdist
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


def source_tarball(requirement: str, name: str, version: str, workdir: Path) -> Path:
    """The npm tarball of a source extension: the user's own .tgz, or the
    registry's, downloaded and checked against its integrity."""
    if Path(requirement).is_file():
        return Path(requirement)
    found = npmdist.dist(name, version or "latest")
    target = workdir / "npm"
    target.mkdir(parents=True, exist_ok=True)
    file = f"{name.lstrip('@').replace('/', '-')}-{found.version}.tgz"
    download(Wanted(file, found.url, found.integrity, f"npm {name}@{found.version}",
                    "the same command"), target)
    return target / file


def lab_tools() -> tuple[Path, Path, str]:
    """The central JupyterLab's staging folder (the core built against), the
    stack's jlpm (jupyter_builder's yarn.js) and JupyterLab's version, from
    the module's own Python."""
    import jupyter_builder
    import jupyterlab
    staging = Path(jupyterlab.__file__).parent / "staging"
    return staging, Path(jupyter_builder.__file__).parent / "yarn.js", jupyterlab.__version__


def build_source(sources: list[tuple[str, str, str]], labextensions: Path, node_bin: Path,
                 workdir: Path, progress: Callable[[str], None]) -> dict[str, str]:
    """Each (requirement, npm name, version) built as a prebuilt extension
    against the central JupyterLab's core into `labextensions`: jlpm installs
    its dependencies (yarn's downloads in the work folder), its own builder
    builds it. No app dir is copied or rebuilt. Returns name -> version."""
    staging, yarn_js, lab_version = lab_tools()
    node = str(Path(node_bin) / "node")
    env = {**os.environ, **labbuild.node_environment(node_bin, workdir, os.environ.get("PATH", ""))}
    built = {}
    for requirement, name, version in sources:
        tarball = source_tarball(requirement, name, version, workdir)
        folder = workdir / "build" / Path(tarball).name.removesuffix(".tgz")
        package = labbuild.prepare(tarball, folder, lab_version, npmdist.REGISTRY)
        progress(f"{package['name']}@{package['version']}: installing its npm dependencies "
                 "(jlpm; a minute when yarn's cache is cold)")
        run(labbuild.install_argv(node, yarn_js, immutable=False), env=env, cwd=folder,
            describe=f"jlpm install for {package['name']}", logfile=workdir / "jlpm.log",
            heartbeat=lambda s, n=package["name"]: progress(f"still installing the npm "
                                                            f"dependencies of {n} ({s:.0f} s)"))
        progress(f"{package['name']}@{package['version']}: building it as a prebuilt extension "
                 f"against the central JupyterLab {lab_version}")
        run(labbuild.build_argv(node, staging), env=env, cwd=folder,
            describe=f"building {package['name']}", logfile=workdir / "build.log",
            heartbeat=lambda s, n=package["name"]: progress(f"still building {n} ({s:.0f} s)"))
        labbuild.install_built(folder, package, labextensions,
                               "Use `stackgen user-overlay remove` to remove it")
        labbuild.drop_build_leftovers(folder)
        built[package["name"]] = package["version"]
    return built
