"""The command line: parses options and wires the stages together, nothing more."""

from __future__ import annotations

import argparse
from pathlib import Path

from stackgen import __version__
from stackgen.common.cliparts import command, json_option, run_parsed, top_parser


def _spec_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", type=Path, default=Path("stack.yaml"), metavar="FILE",
                        help="the stack to work on (default: ./stack.yaml)")


def _wheelhouse_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wheelhouse", type=Path, default=None, metavar="DIR",
                        help="where the locked files are kept (default: ~/.cache/stackgen/wheelhouse)")


def build_parser() -> argparse.ArgumentParser:
    from stackgen.site import commands

    parser = top_parser("Build an HPC centre's Jupyter stack from stack.yaml, reproducibly, "
                        "as Lmod modules.", "stackgen lock && stackgen check")
    parser.add_argument("--version", action="version", version=f"stackgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _spec_and_lock_commands(sub, commands)
    _build_commands(sub, commands)

    from stackgen.user.cli import add_user_overlay
    add_user_overlay(sub)
    return parser


def _spec_and_lock_commands(sub, commands) -> None:
    p = command(sub, "validate", "check stack.yaml against the schema and exit",
                 "stackgen validate --spec stack.yaml", commands.validate)
    _spec_option(p)
    json_option(p)

    p = command(sub, "lock", "resolve the whole stack for the base and write its lock",
                 "stackgen lock\nstackgen lock --upgrade-package jupyterlab\n"
                 "stackgen lock --resolver pip-tools",
                 commands.lock)
    _spec_option(p)
    p.add_argument("--resolver", choices=("uv", "pip-tools"), default="uv",
                   help="uv (default; seconds) or pip-tools (minutes); the same pins, "
                        "the same file")
    p.add_argument("--upgrade-package", "-P", action="append", default=[], metavar="NAME",
                   help="move NAME to its newest allowed version, and only what it forces "
                        "(repeatable)")
    p.add_argument("--upgrade", "-U", action="store_true",
                   help="re-resolve everything to the newest allowed versions")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="downloads and resolver environments (default: ~/.cache/stackgen)")
    json_option(p, "a summary")

    p = command(sub, "check", "exit 0 if the lock matches stack.yaml and the base, 1 if stale",
                 "stackgen check || stackgen lock", commands.check)
    _spec_option(p)
    json_option(p)

    p = command(sub, "schema", "print the JSON Schema of stack.yaml (or its path)",
                 "stackgen schema --path", commands.schema)
    p.add_argument("--path", action="store_true", help="print where the schema file is")
    p.add_argument("--markdown", action="store_true", help="print the key reference as Markdown")


def _build_commands(sub, commands) -> None:
    p = command(sub, "fetch", "download the files the lock names into the wheelhouse, verified",
                 "stackgen fetch --wheelhouse /scratch/wheelhouse", commands.fetch)
    _spec_option(p)
    _wheelhouse_option(p)
    json_option(p, "a summary")

    p = command(sub, "render", "write easyconfigs/ from stack.yaml and the lock",
                 "stackgen render && git diff easyconfigs/", commands.render)
    _spec_option(p)
    _wheelhouse_option(p)
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if easyconfigs/ is not what render would write")

    p = command(sub, "build", "lock check, render, fetch, then EasyBuild: modules under the prefix",
                 "stackgen build --prefix /opt/apps/jupyter\n"
                 "module use /opt/apps/jupyter/modules/all && module load jupyterlab",
                 commands.build)
    _spec_option(p)
    _wheelhouse_option(p)
    p.add_argument("--prefix", type=Path, default=None, metavar="DIR",
                   help="install root (default: install.prefix of stack.yaml, else ./stack)")
    p.add_argument("--relock", action="store_true", help="re-lock a stale lock instead of refusing")
    p.add_argument("--jobs", "-j", type=int, default=4, metavar="N",
                   help="eb runs at once, one per module (default 4); a module's run starts "
                        "once the modules it loads are being built, installs its wheels, then "
                        "waits for them to be built before it checks the install")
    p.add_argument("--resolver", choices=("uv", "pip-tools"), default="uv",
                   help="resolver for --relock")
    p.add_argument("--recheck", action="store_true",
                   help="run the import and pip checks of every module built, even when the "
                        "same inputs (wheels, loaded modules, base) passed them before; a "
                        "recorded pass is otherwise taken once the install holds every file "
                        "of its wheels")
    json_option(p, "a summary")
    _hub_command(sub)


def _hub_command(sub) -> None:
    from stackgen.site.hub_commands import hub_config
    p = command(sub, "hub-config", "write the JupyterHub configuration (batchspawner, the options "
                "form, the idle culler) from stack.yaml's hub section",
                "stackgen hub-config -o /etc/jupyterhub --prefix /opt/apps/jupyter\n"
                "python3 -m venv /opt/hub && /opt/hub/bin/pip install -r /etc/jupyterhub/requirements.txt\n"
                "(cd /etc/jupyterhub && npm install)   # configurable-http-proxy, pinned\n"
                "/opt/hub/bin/jupyterhub -f /etc/jupyterhub/jupyterhub_config.py",
                hub_config)
    _spec_option(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="the hub's folder: stackgen_hub_config.py, requirements.txt and package.json "
                        "are re-made there; jupyterhub_config.py only when absent")
    p.add_argument("--prefix", type=Path, default=None, metavar="DIR",
                   help="where the stack is built (default: install.prefix of stack.yaml, else ./stack); "
                        "jobs run the launcher of its lab module")
    json_option(p, "what was written")


def main(argv: list[str] | None = None) -> int:
    return run_parsed(build_parser(), argv)
