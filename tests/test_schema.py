"""One schema, checked against itself: the shipped JSON Schema, the checker,
the typed objects and the documented keys agree."""

from __future__ import annotations

import dataclasses

from stackgen.site import schema as schema_mod
from stackgen.site import spec
from stackgen.site.hubspec import Hub, HubPartition
from stackgen.site.schemadoc import markdown


def walk(node, path=""):
    """(path, keyword) for every keyword in the schema."""
    for key, value in node.items():
        yield path, key
        if key in ("properties", "$defs"):
            for name, child in value.items():
                yield from walk(child, f"{path}/{key}/{name}")
        elif isinstance(value, dict) and key in ("items", "additionalProperties", "propertyNames"):
            yield from walk(value, f"{path}/{key}")


def test_schema_uses_only_keywords_the_checker_knows():
    unknown = {(p, k) for p, k in walk(schema_mod.schema())
               if k not in schema_mod.SUPPORTED | schema_mod.ANNOTATIONS}
    assert unknown == set()


def test_docs_are_generated_from_the_schema(repo):
    assert (repo / "docs" / "stack-yaml.md").read_text() == markdown(), \
        "run: stackgen schema --markdown > docs/stack-yaml.md"


def test_every_property_is_described_with_an_example():
    def check(node, path):
        for name, child in node.get("properties", {}).items():
            child = schema_mod.resolve_ref(child)
            assert child.get("description"), f"{path}.{name} has no description"
            assert child.get("examples"), f"{path}.{name} has no example"
            check(child, f"{path}.{name}")
    root = schema_mod.schema()
    check(root, "")
    for name in ("module", "kernel"):
        check(root["$defs"][name], name)


def props(name):
    return set(schema_mod.schema()["$defs"][name]["properties"])


def fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


def test_typed_objects_match_the_schema():
    # packages and extensions both become Module.pins
    assert props("module") - {"packages", "extensions"} == fields(spec.Module) - {"name", "pins"}
    assert props("kernel") == fields(spec.Kernel)
    lab = schema_mod.schema()["properties"]["settings"]["properties"]["lab"]["properties"]
    assert set(lab) == fields(spec.LabSettings)
    settings = schema_mod.schema()["properties"]["settings"]["properties"]
    assert set(settings) == fields(spec.Settings)
    assert set(settings["singleuser"]["properties"]) == fields(spec.SingleUserSettings)
    parallel = schema_mod.schema()["properties"]["parallel"]["properties"]
    assert set(parallel) == fields(spec.Parallel)
    assert {k: v["default"] for k, v in parallel.items()} == spec.Parallel().to_dict()
    hub = schema_mod.schema()["properties"]["hub"]["properties"]
    assert set(hub) == fields(Hub) - {"jupyterhub_at"}
    assert {k: v["default"] for k, v in hub.items() if "default" in v} == {
        f.name: list(f.default) if isinstance(f.default, tuple) else f.default
        for f in dataclasses.fields(Hub) if f.default is not dataclasses.MISSING and f.name in hub}
    assert props("hub_partition") == fields(HubPartition)


def test_the_session_side_reads_every_parallel_default():
    from stackgen.session.plan import Options
    assert fields(spec.Parallel) == fields(Options)


def test_reference_stack_is_valid(repo):
    stack = spec.load_stack(repo / "stack.yaml")
    assert [m.name for m in stack.modules] == ["dask", "ipyparallel", "jupyterlab"]
