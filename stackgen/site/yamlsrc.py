"""YAML read with positions: plain data plus the line and column of every node.

Past this module nothing sees YAML; errors can still name `file:line:col`.
A stack.yaml is read within bounds: its size, the number of values after
aliases are expanded (an "alias bomb" of nested aliases would otherwise
take minutes and gigabytes), and the depth of nesting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackgen.common.errors import SpecError

Path_ = tuple  # a key path into the document: ("modules", "dask", "packages", 0)

MAX_BYTES = 1 << 20          # a site's stack.yaml is a few kilobytes
MAX_NODES = 100_000          # values, aliases expanded
MAX_DEPTH = 64               # nested mappings and lists
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.@/+-]*")


@dataclass
class Source:
    """A parsed YAML document and where each of its nodes stood."""

    file: str
    data: Any
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: tuple, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the node at `path`, or its nearest parent."""
        table = self.key_marks if key and path in self.key_marks else self.marks
        while path and path not in table:
            path = path[:-1]
        return table.get(path, (1, 1))

    def error(self, path: tuple, message: str, hint: str | None = None,
              key: bool = False) -> SpecError:
        line, col = self.where(path, key=key)
        return SpecError(self.file, line, col, dotted(path), message, hint)


def dotted(path: tuple) -> str:
    """("modules", "dask", "packages", 0) as modules.dask.packages[0]; a key
    that is not a plain name (a newline, a space) in its quoted form."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)):
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load(path: Path, display: str | None = None) -> Source:
    """Parse `path`; a syntax error becomes a SpecError at its position."""
    display = display or str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(display, 1, 1, "", "file not found",
                        "pass --spec PATH or run stackgen in the folder holding stack.yaml") from None
    except OSError as exc:
        raise SpecError(display, 1, 1, "", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise SpecError(display, 1, 1, "", f"larger than {MAX_BYTES // 1024} KiB: not a stack.yaml",
                        "a stack's description is a few kilobytes; check that --spec names it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(display, line, col, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
                        "save the file as UTF-8") from None
    return loads(text, display)


def loads(text: str, display: str = "stack.yaml") -> Source:
    source = Source(display, None)
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:        # PyYAML composes nested nodes recursively
            raise SpecError(display, 1, 1, "", f"nested deeper than {MAX_DEPTH} levels",
                            "a stack.yaml is a few levels deep; check the brackets") from None
        budget = _Budget(display)
        source.data = _convert(loader, node, (), source, budget) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(display, line, col, "", f"YAML syntax: {problem}",
                        "check indentation (spaces, not tabs) and quoting around this place") from None
    except yaml.YAMLError as exc:
        raise SpecError(display, 1, 1, "", f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()
    return source


class _Budget:
    """Counts values as they are converted, aliases expanded, and the nodes
    on the current path (an alias to its own parent would never end)."""

    def __init__(self, display: str):
        self.display, self.nodes, self.open = display, 0, set()

    def enter(self, node: yaml.Node, path: tuple) -> None:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecError(self.display, line, col, dotted(path),
                            f"more than {MAX_NODES} values once aliases are expanded",
                            "use fewer or less nested YAML aliases (&name, *name)")
        if id(node) in self.open:
            raise SpecError(self.display, line, col, dotted(path), "an alias refers to itself",
                            "a YAML alias (*name) cannot stand inside what it names")
        if len(path) > MAX_DEPTH:
            raise SpecError(self.display, line, col, dotted(path[:MAX_DEPTH]),
                            f"nested deeper than {MAX_DEPTH} levels",
                            "a stack.yaml is a few levels deep")


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, source: Source,
             budget: _Budget) -> Any:
    budget.enter(node, path)
    source.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        budget.open.add(id(node))
        try:
            return _convert_collection(loader, node, path, source, budget)
        finally:
            budget.open.discard(id(node))
    return loader.construct_object(node)


def _convert_collection(loader, node, path: tuple, source: Source, budget: _Budget) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                raise SpecError(source.file, line, col, dotted(path), "a key must be a plain name")
            key = loader.construct_object(key_node)
            key = str(key) if key is not None else "null"
            sub = path + (key,)
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first = source.key_marks[sub][0]
                raise SpecError(source.file, line, col, dotted(sub),
                                f"duplicate key (first given on line {first})",
                                "YAML keeps only one of them; merge the two entries")
            source.key_marks[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _convert(loader, value_node, sub, source, budget)
        return out
    return [_convert(loader, item, path + (i,), source, budget) for i, item in enumerate(node.value)]
