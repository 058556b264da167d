"""YAML read with positions: plain data plus the line and column of every node.

Past this module nothing sees YAML; errors can still name `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackgen.common.errors import SpecError

Path_ = tuple  # a key path into the document: ("modules", "dask", "packages", 0)


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
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(path: Path, display: str | None = None) -> Source:
    """Parse `path`; a syntax error becomes a SpecError at its position."""
    display = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(display, 1, 1, "", "file not found",
                        "pass --spec PATH or run stackgen in the folder holding stack.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(display, 1, 1, "", f"cannot read: {exc}") from None
    return loads(text, display)


def loads(text: str, display: str = "stack.yaml") -> Source:
    source = Source(display, None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        source.data = _convert(loader, node, (), source) if node is not None else None
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


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, source: Source) -> Any:
    source.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
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
            out[key] = _convert(loader, value_node, sub, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), source) for i, item in enumerate(node.value)]
    return loader.construct_object(node)
