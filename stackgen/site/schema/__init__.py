"""The stack.yaml schema (JSON Schema, shipped as a file) and its checker.

The checker implements the part of JSON Schema the shipped schema uses
(SUPPORTED); a test keeps the two in step, so editors validating with a
full JSON Schema implementation and stackgen agree.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from stackgen.site.yamlsrc import Source

SCHEMA_FILE = "stack.schema.json"

# Keywords the checker understands; annotations are accepted and ignored.
SUPPORTED = {"type", "properties", "required", "additionalProperties", "items",
             "enum", "pattern", "minLength", "minItems", "minProperties",
             "propertyNames", "$ref", "uniqueItems", "minimum"}
ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default",
               "examples", "markdownDescription", "$comment"}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "null": type(None),
}


@lru_cache(maxsize=1)
def schema() -> dict:
    text = resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def schema_path() -> str:
    return str(resources.files(__name__).joinpath(SCHEMA_FILE))


def validate(source: Source) -> None:
    """Raise SpecError for the first place in `source` the schema rejects."""
    _check(source.data, schema(), (), source)


def resolve_ref(node: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported: {ref}")
        target: Any = schema()
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _type_word(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return {"object": "a mapping", "array": "a list", "null": "empty",
                    "boolean": "true/false", "integer": "a whole number",
                    "number": "a number", "string": "a string"}[name]
    return type(value).__name__


def _expected(types: list[str]) -> str:
    words = {"object": "a mapping (key: value)", "array": "a list", "string": "a string",
             "boolean": "true or false", "integer": "a whole number", "number": "a number",
             "null": "empty"}
    return " or ".join(words[t] for t in types)


def _check(value: Any, node: dict, path: tuple, source: Source) -> None:
    node = resolve_ref(node)
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_is_type(value, t) for t in types):
            hint = None
            if "string" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
                hint = f'quote it: "{value}" (YAML reads unquoted 4.10 as the number 4.1)'
            elif "array" in types and isinstance(value, str):
                hint = f"write a list, e.g. [{value}] or one '- {value}' line per item"
            raise source.error(path, f"expected {_expected(types)}, got {_type_word(value)}",
                               hint or _example_hint(node))
    if "enum" in node and value not in node["enum"]:
        choices = ", ".join(json.dumps(c) for c in node["enum"])
        raise source.error(path, f"{json.dumps(value)} is not one of {choices}")
    if ("minimum" in node and isinstance(value, (int, float)) and not isinstance(value, bool)
            and value < node["minimum"]):
        raise source.error(path, f"must be at least {node['minimum']}, not {value}", _example_hint(node))
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            raise source.error(path, "must not be empty", _example_hint(node))
        if "pattern" in node and not re.search(node["pattern"], value):
            raise source.error(path, f"{value!r} is not valid here: "
                               f"{node.get('description', 'see the schema').split('.')[0]}",
                               _example_hint(node))
    if isinstance(value, list):
        _check_list(value, node, path, source)
    if isinstance(value, dict):
        _check_mapping(value, node, path, source)


def _check_list(value: list, node: dict, path: tuple, source: Source) -> None:
    if len(value) < node.get("minItems", 0):
        raise source.error(path, f"needs at least {node['minItems']} item(s)", _example_hint(node))
    if "items" in node:
        for i, item in enumerate(value):
            _check(item, node["items"], path + (i,), source)
    if node.get("uniqueItems"):
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                raise source.error(path + (i,), f"{item!r} is listed twice "
                                   f"(also item {seen[key] + 1})", "remove one of them")
            seen[key] = i


def _check_mapping(value: dict, node: dict, path: tuple, source: Source) -> None:
    props = node.get("properties", {})
    for name in node.get("required", []):
        if name not in value:
            where = f"under {path[-1]}" if path else "at the top level"
            raise source.error(path, f"missing required key '{name}' {where}",
                               _example_hint(resolve_ref(props.get(name, {})), name))
    if len(value) < node.get("minProperties", 0):
        raise source.error(path, "must not be empty", _example_hint(node))
    extra = node.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in node:
            pattern = resolve_ref(node["propertyNames"]).get("pattern")
            if pattern and not re.search(pattern, key):
                raise source.error(path + (key,), f"{key!r} is not a valid name "
                                   f"(letters, digits, '.', '_', '-'; starting with a letter or digit)",
                                   key=True)
        if key in props:
            _check(item, props[key], path + (key,), source)
        elif extra is False:
            raise source.error(path + (key,), f"unknown key '{key}'", _known_keys_hint(key, props),
                               key=True)
        elif isinstance(extra, dict):
            _check(item, extra, path + (key,), source)


def _known_keys_hint(key: str, props: dict) -> str:
    import difflib
    close = difflib.get_close_matches(key, list(props), n=1)
    known = ", ".join(sorted(props))
    if close:
        return f"did you mean '{close[0]}'? Known keys here: {known}"
    return f"known keys here: {known}"


def _example_hint(node: dict, name: str | None = None) -> str | None:
    examples = node.get("examples")
    if not examples:
        return None
    example = examples[0]
    shown = json.dumps(example) if not isinstance(example, str) else example
    return f"for example: {name + ': ' if name else ''}{shown}"
