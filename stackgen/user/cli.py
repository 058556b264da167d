"""`stackgen user-overlay ...`: the user side. The same parser serves the
site's `stackgen` and the launcher the jupyterlab module puts on a user's
PATH (which offers only these commands)."""

from __future__ import annotations

import argparse
import sys

from stackgen.common.cliparts import command, common_options, json_option, run_parsed, top_parser
from stackgen.common.pypi import INDEX_URL


def add_user_overlay(sub) -> None:
    """The `user-overlay` command and its subcommands, on `sub`."""
    from stackgen.user import overlay_commands as oc

    top = sub.add_parser(
        "user-overlay", help="your own lab extensions on top of the central JupyterLab",
        description="Add lab extensions of your own on top of the central JupyterLab bundle, "
                    "keeping every central extension and setting. Run after "
                    "`module load jupyterlab`; nothing central is written.",
        epilog="example:\n  module load jupyterlab\n  stackgen user-overlay add "
               "jupyterlab-execute-time\n  stackgen user-overlay list",
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common_options()])
    inner = top.add_subparsers(dest="overlay_command", metavar="COMMAND", required=True)

    def index(p):
        p.add_argument("--index-url", default=INDEX_URL, metavar="URL",
                       help=f"package index for your extensions (default: {INDEX_URL})")

    p = command(inner, "add", "add a lab extension (a PyPI package, or --source an npm package)",
                "stackgen user-overlay add jupyterlab-execute-time\n"
                "stackgen user-overlay add --source jupyterlab-tour@4.0.1", oc.add)
    p.add_argument("extension", help="PyPI requirement, e.g. 'jupyterlab-execute-time==3.2.0'; "
                                     "with --source an npm package, e.g. 'name@1.2.3'")
    p.add_argument("--source", action="store_true",
                   help="an npm package with no prebuilt form: rebuild a copy of the central "
                        "app dir with it (needs a minute or two and node, fetched if missing)")
    json_option(p)
    index(p)
    p = command(inner, "remove", "remove an extension from your overlay",
                "stackgen user-overlay remove jupyterlab-execute-time", oc.remove)
    p.add_argument("extension")
    json_option(p)
    index(p)
    p = command(inner, "list", "what your overlay holds and whether it is current",
                "stackgen user-overlay list --json", oc.list_)
    json_option(p)
    p = command(inner, "sync", "re-make your overlay on the current central bundle",
                "stackgen user-overlay sync", oc.sync)
    json_option(p)
    index(p)
    p = command(inner, "reset", "remove your overlay: back to the central bundle alone",
                "stackgen user-overlay reset", oc.reset)
    json_option(p)
    _add_venv_and_kernels(inner)

    p = command(inner, "doctor", "check the lab with your overlay: every extension enabled OK, "
                "no central package shadowed", "stackgen user-overlay doctor", oc.doctor)
    json_option(p)


def _add_venv_and_kernels(inner) -> None:
    from stackgen.user import kernel_commands as kc

    venv = inner.add_parser("venv", help="virtual environments on the stack's Python")
    venv_sub = venv.add_subparsers(dest="venv_command", metavar="COMMAND", required=True)
    p = command(venv_sub, "create", "a venv that sees the stack's packages, with a kernel",
                "stackgen user-overlay venv create ~/venvs/analysis\n"
                "~/venvs/analysis/bin/python -m pip install tabulate", kc.venv_create)
    p.add_argument("path", help="a new folder")
    p.add_argument("--name", help="kernel name (default: the folder's name)")
    p.add_argument("--display-name", metavar="TEXT", help="name shown in the launcher")

    kernel = inner.add_parser("kernel", help="your own kernels on the stack")
    kernel_sub = kernel.add_subparsers(dest="kernel_command", metavar="COMMAND", required=True)
    p = command(kernel_sub, "add", "a kernel that loads the stack and modules, sets variables "
                "and runs ipykernel from a venv",
                "stackgen user-overlay kernel add analysis --venv ~/venvs/analysis \\\n"
                "    --module cray-netcdf --env OMP_NUM_THREADS=4", kc.kernel_add)
    p.add_argument("name", help="kernel name (any text; its folder name is made safe)")
    p.add_argument("--venv", metavar="PATH", help="run ipykernel from this virtual environment")
    p.add_argument("--module", action="append", default=[], metavar="M",
                   help="a module to load before the kernel starts (repeatable)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="a variable to set for the kernel (repeatable)")
    p.add_argument("--display-name", metavar="TEXT", help="name shown in the launcher")
    p.add_argument("--force", action="store_true",
                   help="replace a kernel of that name that stackgen made for you")
    p.add_argument("--install-ipykernel", action="store_true",
                   help="install ipykernel into the venv if it cannot import it")
    p = command(kernel_sub, "list", "your kernels made by stackgen, and which are stale",
                "stackgen user-overlay kernel list --json", kc.kernel_list)
    json_option(p)
    p = command(kernel_sub, "remove", "remove one of your kernels",
                "stackgen user-overlay kernel remove analysis", kc.kernel_remove)
    p.add_argument("name")


def main(argv: list[str] | None = None) -> int:
    """The launcher in the jupyterlab module: `stackgen user-overlay ...` and
    `stackgen parallel ...`."""
    from stackgen.session.cli import add_parallel

    parser = top_parser("Your own lab extensions on top of the central JupyterLab, and "
                        "parallel contexts on your job's nodes.",
                        "stackgen user-overlay add jupyterlab-execute-time")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_user_overlay(sub)
    add_parallel(sub)
    return run_parsed(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
