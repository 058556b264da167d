"""The one jinja2 environment for every generated text (easyconfigs, Lua
footers, launchers), with StrictUndefined and one quoting filter per
target language: py, pywrapped, pytext (easyconfigs), lua and luaparts (module
footers), sh (shell scripts), yaml (yarn's settings)."""

from __future__ import annotations

import json
import shlex
from functools import lru_cache

import jinja2

LINE_LIMIT = 120


def py_literal(value, indent: int = 0) -> str:
    """A Python literal for JSON-like data, laid out as EasyBuild's style wants."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        items = [f"{pad}    {py_literal(str(k))}: {py_literal(v, indent + 4)}," for k, v in sorted(value.items())]
        return "{\n" + "\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        items = [f"{pad}    {py_literal(v, indent + 4)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    return json.dumps(value)


def py_wrapped(value: str, indent: int, key: str = "'source_tmpl': ") -> str:
    """A long string as adjacent literals, so no line passes EasyBuild's
    120-column limit (long manylinux wheel names do)."""
    if indent + len(key) + len(value) + 3 <= LINE_LIMIT:
        return py_literal(value)
    size = LINE_LIMIT - indent - 8
    parts = [value[i:i + size] for i in range(0, len(value), size)]
    inner = "\n".join(" " * (indent + 4) + py_literal(p) for p in parts)
    return "(\n" + inner + "\n" + " " * indent + ")"


def py_text(value: str) -> str:
    """Text of several lines as a triple-quoted literal, readable in the
    easyconfig; a repr when the text could end the literal early."""
    if '"""' in value or "\\" in value or value.endswith('"'):
        return repr(value)
    return '"""\n' + value + '\n"""'


def lua_string(value: str) -> str:
    """A Lua string literal (JSON's escapes are valid Lua for these values)."""
    return json.dumps(str(value))


def lua_parts(parts) -> str:
    """Path parts as Lua string arguments, for `pathJoin(root, ...)`."""
    return ", ".join(lua_string(part) for part in parts)


def yaml_string(value: object) -> str:
    """A YAML scalar holding exactly `value` (a JSON string is one)."""
    return json.dumps(str(value))


def sh_quote(value: object) -> str:
    """One shell word, whatever the value holds."""
    return shlex.quote(str(value))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("stackgen", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    env.filters["py"] = py_literal
    env.filters["pyblock"] = py_literal
    env.filters["pywrapped"] = py_wrapped
    env.filters["pytext"] = py_text
    env.filters["lua"] = lua_string
    env.filters["luaparts"] = lua_parts
    env.filters["sh"] = sh_quote
    env.filters["yaml"] = yaml_string
    return env
