"""The parts every stackgen command line is made of, on both sides: a
subcommand with --help and an example, the options every subcommand takes,
and the one place a StackgenError becomes its message and exit code."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap


def command(sub, name: str, help: str, example: str, func) -> argparse.ArgumentParser:
    """A subcommand of `sub` running `func(args)`, its --help ending in `example`."""
    parser = sub.add_parser(name, help=help, description=help, parents=[common_options()],
                            epilog="example:\n" + textwrap.indent(example.strip(), "  "),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def common_options() -> argparse.ArgumentParser:
    """--debug and -v, accepted after the subcommand too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and every command run")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log each step")
    return common


def json_option(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def top_parser(description: str, example: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackgen", description=description, epilog="example:\n  " + example,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and every command run")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return parser


def os_error(exc: OSError):
    """An OSError that no stage turned into a project error, as one: the
    path, what the system said, and what to do."""
    from stackgen.common.errors import StackgenError
    where = " ".join(str(p) for p in (exc.filename, exc.filename2) if p) or "a file"
    reason = exc.strerror or str(exc)
    return StackgenError(f"{where}: {reason}",
                         "check that this path is a folder you may write to, on a disk with space "
                         "left (for your own files: HOME, XDG_DATA_HOME), then run the command again")


def run_parsed(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run the chosen command, turn a StackgenError into its message."""
    from stackgen.common.errors import StackgenError
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else
                        logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args) or 0
    except StackgenError as exc:
        if args.debug:
            raise
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:        # a disk, a permission, a folder that is a file
        if args.debug:
            raise
        print(os_error(exc).render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
