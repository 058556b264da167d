"""Kernels: a kernel.json and the launcher script it runs, for the site's
kernels (stack.yaml, written into the central install by the build) and a
user's own (`stackgen user-overlay kernel add`). Pure: text in, text out.

The launcher is a template; every value in it goes through one quoting
filter, so a name, path or variable holding spaces, quotes or `$(...)` gives a
working kernel and runs nothing else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from stackgen.common.errors import InputError
from stackgen.common.templating import environment

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LAUNCHER = "kernel.sh"


@dataclass(frozen=True)
class KernelSpec:
    """Everything a kernel's two files say."""

    name: str                              # the folder name: [a-z0-9._-]
    display_name: str
    stack_module: str                      # "jupyterlab/2026.11"
    modulepath: str                        # where the stack's modules are
    lmod_init: str                         # Lmod's bash init, for a shell without `module`
    modules: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    venv: str = ""                         # a virtual environment, or the stack's python
    metadata: tuple[tuple[str, str], ...] = ()


def slug(name: str) -> str:
    """A kernelspec folder name from any name: Jupyter allows [a-z0-9._-]."""
    out = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    if not out:
        raise InputError(f"kernel name {name!r} has no letters or digits",
                         "name the kernel with at least one letter or digit")
    return out[:60]


def display_name(text: str) -> str:
    """A display name as given, refused when it holds a newline or another
    control character: it is one line in the launcher's menu."""
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise InputError(f"display name {text!r} holds a newline or another control character",
                         "give the kernel's display name as one line of text")
    return text


def parse_env(items: list[str]) -> tuple[tuple[str, str], ...]:
    """`K=V` pairs from the command line; the key must be a variable name."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise InputError(f"--env {item!r}: expected NAME=VALUE with NAME a variable name",
                             "for example --env OMP_NUM_THREADS=4")
        out.append((key, value))
    return tuple(out)


def launcher_text(spec: KernelSpec) -> str:
    return environment().get_template("kernel.sh.j2").render(
        lmod_init=spec.lmod_init, modulepath=spec.modulepath,
        stack_module=spec.stack_module, modules=spec.modules, env=spec.env, venv=spec.venv)


def kernel_json(spec: KernelSpec, folder: str) -> str:
    data = {"argv": [f"{folder}/{LAUNCHER}", "{connection_file}"],
            "display_name": spec.display_name, "language": "python",
            "metadata": {"stackgen": dict(spec.metadata)}}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
