"""Building a source-only lab extension as a prebuilt (federated) extension
against a JupyterLab's own core, the same way for the central bundle
(StackgenBundle, inside EasyBuild), for `stackgen lock` (which only
installs, to learn what yarn resolves) and for a user's overlay.

The steps: the extension's npm tarball unpacked into a work folder; its
package.json cut down to what the build needs (its runtime dependencies and
@jupyterlab/builder, no scripts); the stack's `jlpm` (jupyter_builder's
yarn, `nodeLinker: node-modules`) installs them; the extension's own
builder (`build-labextension.js --core-path <jupyterlab>/staging .`) writes
the prebuilt extension into its `jupyterlab.outputDir`, which is then
installed as `share/jupyter/labextensions/<name>` with an install.json.
JupyterLab's app dir is never rebuilt, and no node runs at `module load`
or at lab start.

A locked build is offline by construction: yarn's only registry is
`LockedRegistry`, a server on 127.0.0.1 that serves exactly the verified
tarballs of the lock and nothing else, and the install is `--immutable`
against the yarn.lock the lock recorded.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import tarfile
import threading
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from stackgen.common.fsutil import write_atomic
from stackgen.common.templating import environment as templates

BUILDER = "@jupyterlab/builder"
# the stack's jlpm, in the jupyter-builder wheel and its install
YARN_JS = "jupyter_builder/yarn.js"
# what a package.json keeps for the build: the rest (scripts, lint and test
# tooling in devDependencies, workspaces) is for the extension's developers
_KEPT = ("name", "version", "main", "style", "styleModule", "types", "files", "sideEffects",
         "dependencies", "peerDependencies", "resolutions", "jupyterlab", "license")


def node_environment(node_bin: str | os.PathLike | None, workdir: Path, path: str,
                     yarn_cache: str | os.PathLike | None = None) -> dict[str, str]:
    """Variables for jlpm and the builder, on top of the caller's environment:
    node first on `path` (once); yarn's cache in `workdir` or a kept
    `yarn_cache` (never ~/.yarn/berry: a home under quota); the system CA
    store, which node ignores unless told."""
    if node_bin and not path.startswith(f"{node_bin}{os.pathsep}"):
        path = f"{node_bin}{os.pathsep}{path}"
    return {
        "PATH": path,
        "YARN_CACHE_FOLDER": str(yarn_cache or Path(workdir) / "yarn-cache"),
        "YARN_GLOBAL_FOLDER": str(Path(workdir) / "yarn-global"),
        "YARN_ENABLE_GLOBAL_CACHE": "false",
        "YARN_ENABLE_TELEMETRY": "false",
        "npm_config_cache": str(Path(workdir) / "npm-cache"),
        "NODE_USE_SYSTEM_CA": "1",
    }


def safe_extract(tar: tarfile.TarFile, folder: Path) -> None:
    """Extract only regular files and folders that stay inside `folder`. The
    module's Python may be a 3.11 before tarfile's extraction filters (3.11.4):
    Debian 12's is 3.11.2."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    root = Path(folder).resolve()
    members = []
    for member in tar.getmembers():
        inside = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not inside.is_relative_to(root):
            raise ValueError(f"{tar.name}: {member.name} is not a plain file inside the package")
        members.append(member)
    tar.extractall(folder, members=members)


def unpack(tarball: str | os.PathLike, target: Path) -> dict:
    """The npm tarball's package/ folder as `target`; its package.json."""
    target = Path(target)
    scratch = target.with_name(f".{target.name}.unpack")
    shutil.rmtree(scratch, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        safe_extract(tar, scratch)
    inner = [p for p in scratch.iterdir() if (p / "package.json").is_file()]
    if len(inner) != 1:
        raise ValueError(f"{tarball} is not an npm package tarball (no package/package.json)")
    shutil.rmtree(target, ignore_errors=True)
    inner[0].rename(target)
    shutil.rmtree(scratch, ignore_errors=True)
    return json.loads((target / "package.json").read_text())


def build_manifest(package: dict, lab_version: str) -> dict:
    """The package.json the build installs from: the extension's runtime
    side and its own builder range (else the central JupyterLab's major)."""
    kept = {key: package[key] for key in _KEPT if key in package}
    builder = (package.get("devDependencies") or {}).get(BUILDER) \
        or (package.get("dependencies") or {}).get(BUILDER) \
        or f"^{lab_version.split('.')[0]}.0.0"
    kept["devDependencies"] = {BUILDER: builder}
    if "jupyterlab" in kept:          # the builder has no default: say where it writes
        kept["jupyterlab"] = {**kept["jupyterlab"], "outputDir": output_dir(package)}
    return kept


def output_dir(package: dict) -> str:
    """Where the builder writes the prebuilt extension (package.json's
    jupyterlab.outputDir, relative to the package)."""
    out = (package.get("jupyterlab") or {}).get("outputDir") or "lib/labextension"
    if os.path.isabs(out) or ".." in Path(out).parts:
        raise ValueError(f"{package.get('name')}: jupyterlab.outputDir {out!r} leaves the package")
    return out


def prepare(tarball: str | os.PathLike, folder: Path, lab_version: str,
            registry: str, yarn_lock: str | None = None) -> dict:
    """`folder` ready for `jlpm install`: the package unpacked, its
    package.json cut down (build_manifest), yarn's settings, and the locked
    yarn.lock when there is one. Returns the original package.json."""
    folder = Path(folder)
    package = unpack(tarball, folder)
    write_atomic(folder / "package.json",
                 json.dumps(build_manifest(package, lab_version), indent=2, sort_keys=True) + "\n")
    host = urllib.parse.urlsplit(registry).hostname or ""
    write_atomic(folder / ".yarnrc.yml", templates().get_template("yarnrc.yml.j2").render(
        registry=registry, http_hosts=[host] if registry.startswith("http:") else []))
    lock = folder / "yarn.lock"
    if yarn_lock is not None:
        write_atomic(lock, yarn_lock)
    elif not lock.exists():
        lock.write_text("")        # yarn treats the folder as its project's root
    return package


def jlpm(node: str, yarn_js: str | os.PathLike, *args: str) -> list[str]:
    return [node, str(yarn_js), *args]


def install_argv(node: str, yarn_js: str | os.PathLike, immutable: bool) -> list[str]:
    """The install; against a recorded yarn.lock, one it must not change."""
    return jlpm(node, yarn_js, "install", *(["--immutable"] if immutable else []))


def build_argv(node: str, staging: str | os.PathLike) -> list[str]:
    """The extension's own builder, against the central JupyterLab's core."""
    return [node, f"node_modules/{BUILDER}/lib/build-labextension.js",
            "--core-path", str(staging), "."]


def built_dir(folder: Path, package: dict) -> Path:
    """Where the builder wrote the prebuilt extension in the work folder."""
    built = Path(folder) / output_dir(package)
    if not (built / "package.json").is_file():
        raise ValueError(f"{package.get('name')}: the builder wrote no {output_dir(package)}")
    return built


def install_built(folder: Path, package: dict, labextensions: Path, how: str) -> Path:
    """The built extension moved to `labextensions/<name>` with JupyterLab's
    install.json (`how`: what put it there, shown by `labextension list`)."""
    return install_prebuilt(built_dir(folder, package), package["name"], labextensions, how)


def install_prebuilt(built: Path, name: str, labextensions: Path, how: str) -> Path:
    """A prebuilt extension folder copied to `labextensions/<name>` with its install.json."""
    target = Path(labextensions).joinpath(*name.split("/"))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(built, target)
    write_atomic(target / "install.json", json.dumps(
        {"packageManager": "stackgen", "packageName": name,
         "uninstallInstructions": how}, indent=2, sort_keys=True) + "\n")
    return target


def recipe_digest() -> str:
    """What stackgen does to an extension before its own builder runs (this
    module and yarn's settings), as part of a build's inputs."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(templates().loader.get_source(templates(), "yarnrc.yml.j2")[0].encode())
    return digest.hexdigest()


def staging(install: str | os.PathLike) -> Path:
    """JupyterLab's staging folder in an install (its package's own): the
    core the builder builds against."""
    found = list(Path(install).glob("lib/python*/site-packages/jupyterlab/staging"))
    if len(found) != 1:
        raise ValueError(f"JupyterLab's staging folder not found in {install}")
    return found[0]


def yarn_js(install: str | os.PathLike) -> Path:
    """The stack's jlpm (jupyter_builder's yarn.js) in an install."""
    found = list(Path(install).glob(f"lib/python*/site-packages/{YARN_JS}"))
    if len(found) != 1:
        raise ValueError(f"jlpm (jupyter_builder/yarn.js) not found in {install}")
    return found[0]


# yarn asks for /<name>/-/<base>-<version>.tgz, a scope's slash sometimes as %2f
_TARBALL_PATH = re.compile(r"^/((?:@[^/]+/)?[^/]+)/-/([^/]+)\.tgz$")


def registry_path(name: str, version: str) -> str:
    return f"/{name}/-/{name.split('/')[-1]}-{version}.tgz"


class LockedRegistry:
    """An npm registry on 127.0.0.1 serving only the given tarballs
    ({registry path: file}), each already verified: a locked build's yarn
    reaches nothing else. Use as a context manager; `url` is its address."""

    def __init__(self, tarballs: Mapping[str, str | os.PathLike]):
        files = {path: Path(file) for path, file in tarballs.items()}
        self.asked: list[str] = []
        asked = self.asked

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:               # noqa: N802 (http.server's name)
                path = urllib.parse.unquote(self.path.split("?")[0])
                asked.append(path)
                file = files.get(path) if _TARBALL_PATH.match(path) else None
                if file is None:
                    self.send_error(404, "not in the lock")
                    return
                data = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:   # yarn's own output says enough
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LockedRegistry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def drop_build_leftovers(folder: Path) -> None:
    """The work folder's node_modules (hundreds of MB nobody reads afterwards)."""
    shutil.rmtree(Path(folder) / "node_modules", ignore_errors=True)
