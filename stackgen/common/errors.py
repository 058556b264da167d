"""One error family: each carries the message the user sees and a hint.

Exit codes: 2 for bad input, 1 for a failed step or a stale result.
"""

from __future__ import annotations


class StackgenError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class InputError(StackgenError):
    """Bad input: stack.yaml, a command-line value, a lock written by hand."""

    exit_code = 2


class SpecError(InputError):
    """A problem at a place in stack.yaml: rendered as file:line:col."""

    def __init__(self, file: str, line: int, col: int, path: str, message: str,
                 hint: str | None = None):
        where = f"{file}:{line}:{col}"
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}", hint)
        self.file, self.line, self.col, self.path = file, line, col, path
        self.problem = message

    def render(self) -> str:
        text = self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class StaleError(StackgenError):
    """A generated file no longer matches its inputs."""

    exit_code = 1


class CommandError(StackgenError):
    """An external command failed; carries the command and its output's tail."""

    def __init__(self, argv: list[str], returncode: int, output: str,
                 message: str | None = None, hint: str | None = None,
                 log: str | None = None):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.log = log
        tail = "\n".join("    " + line for line in output.rstrip().splitlines()[-15:])
        text = message or f"command failed (exit {returncode}): {' '.join(argv[:4])}{' ...' if len(argv) > 4 else ''}"
        if tail:
            text += f"\n  last lines of its output:\n{tail}"
        if log:
            text += f"\n  full output: {log}"
        super().__init__(text, hint)
