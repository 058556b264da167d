"""The source extensions of an easyconfig (`lab_source_extensions`), as
StackgenBundle builds them, in pure parts testable without EasyBuild: each
file the build uses found beside the extension's tarball in the sourcepath
and verified against the lock's digest, the registry paths yarn asks
for mapped to those files (stackgen.common.labbuild.LockedRegistry), and
the built extensions kept across builds by the digest of their inputs."""

import os
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from stackgen.common import labbuild
from stackgen.common.download import digest_for
from stackgen.site.easyblocks.install import inputs_digest
from stackgen.site.npm import tarball_file

HEARTBEAT = 15.0        # seconds between "still ..." lines of a long step


def wait_saying(future, say, every=None):
    """`future`'s result, calling `say(seconds so far)` every `every` seconds
    (HEARTBEAT) until it is there."""
    started = time.monotonic()
    while True:
        try:
            return future.result(timeout=every or HEARTBEAT)
        except FutureTimeout:
            say(time.monotonic() - started)


@dataclass(frozen=True)
class SourceBuild:
    """One source extension's verified inputs."""

    name: str
    version: str
    tarball: str
    yarn_lock: str                  # its text
    registry: dict                  # registry path -> verified tarball

    @property
    def text(self):
        return f"{self.name}@{self.version}"


def verified(path, digest, what):
    """`path` when it exists and has `digest`; ValueError naming `what` otherwise."""
    if not path or not os.path.isfile(path):
        raise ValueError(f"{what}: {os.path.basename(str(path))} is not in the sourcepath "
                         "(stackgen fetch puts it into the wheelhouse)")
    got = digest_for(path, digest)
    if got != digest:
        raise ValueError(f"{what}: {path} has {got}, the lock names {digest}")
    return path


def source_build(entry, tarball_path, yarn_lock_path):
    """The SourceBuild of one `lab_source_extensions` entry, given where its
    tarball and yarn.lock were found; every npm package of its tree must be
    beside the tarball (the wheelhouse), each verified."""
    what = f"source extension {entry['name']}@{entry['version']}"
    verified(tarball_path, entry['integrity'], what)
    yarn_file, yarn_sha = entry['yarn_lock']
    verified(yarn_lock_path, yarn_sha, what)
    folder = os.path.dirname(tarball_path)
    registry = {}
    for name, version, integrity in entry['tree']:
        path = os.path.join(folder, tarball_file(name, version))
        registry[labbuild.registry_path(name, version)] = verified(path, integrity,
                                                                   f"{what}: npm {name}@{version}")
    with open(yarn_lock_path, encoding='utf-8') as fh:
        text = fh.read()
    return SourceBuild(entry['name'], entry['version'], tarball_path, text, registry)


def first_found(find, roots):
    """What `find(root)` gives for the first install root that has it
    (ValueError otherwise): JupyterLab's staging folder, the stack's jlpm."""
    errors = []
    for root in filter(None, roots):
        try:
            return find(root)
        except ValueError as err:
            errors.append(str(err))
    raise ValueError('; '.join(errors) or 'no install to look in')


def build_key(entry, lab, node_version, recipe):
    """The digest of everything a source extension's prebuilt form is made
    from: its tarball, its locked tree and yarn.lock, the JupyterLab whose
    core it is built against (its wheel's digest), node and stackgen's
    recipe (labbuild.recipe_digest). Same key, same build: kept across builds."""
    inputs = {"name": entry['name'], "version": entry['version'],
              "integrity": entry['integrity'], "yarn_lock": list(entry['yarn_lock']),
              "tree": sorted(map(list, entry['tree'])), "jupyterlab": lab,
              "node": node_version, "recipe": recipe}
    return inputs_digest(inputs)


def cached_build(cache, key):
    """The prebuilt extension kept under `key` in the folder `cache`, or None."""
    folder = os.path.join(cache, key) if cache else None
    return folder if folder and os.path.isfile(os.path.join(folder, 'package.json')) else None


def keep_build(cache, key, built):
    """Keep the prebuilt extension `built` under `key` (whole or not at all:
    copied beside, then renamed; a build that kept it first wins)."""
    os.makedirs(cache, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f'.{key}.', dir=cache)
    try:
        shutil.copytree(built, os.path.join(scratch, 'x'))
        os.rename(os.path.join(scratch, 'x'), os.path.join(cache, key))
    except OSError:
        if not cached_build(cache, key):
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def yarn_js_from_wheel(wheel, folder):
    """The stack's jlpm (jupyter_builder's yarn.js) read from its verified
    wheel into `folder`: the build can install before the wheel is."""
    target = os.path.join(folder, 'yarn.js')
    os.makedirs(folder, exist_ok=True)
    with zipfile.ZipFile(wheel) as whl, open(target, 'wb') as fh:
        fh.write(whl.read(labbuild.YARN_JS))
    return target

