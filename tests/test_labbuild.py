"""The cache of built JupyterLab app dirs (stackgen.common.labbuild): its key, and
that a restored build is the stored one, moved to where it is restored.
The real build and restore run in the e2e build (test_stack_e2e)."""

from __future__ import annotations

import json
import os

from stackgen.common import labbuild


def staging(tmp_path, yarn_lock="lock 1\n"):
    folder = tmp_path / "jupyterlab" / "staging"
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"version": "4.6.4"}\n')
    (folder / "yarn.lock").write_text(yarn_lock)
    (folder / "templates" / "partial.html").write_text("<div/>\n")
    return folder


def test_key_changes_with_each_input_and_only_then(tmp_path):
    folder = staging(tmp_path)
    key = labbuild.build_key(folder, "v24.11.1", ["sha512-a"])
    assert key == labbuild.build_key(folder, "v24.11.1", ["sha512-a"])
    assert key != labbuild.build_key(folder, "v22.0.0", ["sha512-a"])
    assert key != labbuild.build_key(folder, "v24.11.1", ["sha512-b"])
    assert key != labbuild.build_key(folder, "v24.11.1", ["sha512-a", "sha512-b"])
    (folder / "templates" / "partial.html").write_text("<p/>\n")
    assert key != labbuild.build_key(folder, "v24.11.1", ["sha512-a"])


def built_app_dir(root):
    app = root / "share" / "jupyter" / "lab"
    (app / "static").mkdir(parents=True)
    (app / "extensions").mkdir()
    (app / "static" / "main.abc.js").write_text("console.log(1)\n")
    (app / "static" / "main.abc.js.map").write_text(json.dumps({"sources": [f"{app}/staging/x.js"]}))
    (app / "static" / "build_log.json").write_text(json.dumps([{"context": f"{app}/staging"}]))
    (app / "extensions" / "tour-4.0.1.tgz").write_bytes(b"\x1f\x8b tarball")
    return app


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_restored_build_is_the_stored_one_naming_its_new_place(tmp_path):
    cache = tmp_path / "cache"
    first = built_app_dir(tmp_path / "one")
    labbuild.store(cache, "k1", first)
    second = tmp_path / "two" / "share" / "jupyter" / "lab"
    (second / "static").mkdir(parents=True)
    (second / "static" / "stale.js").write_text("from the wheel\n")
    assert labbuild.restore(cache, "k1", second)
    restored = tree(second)
    assert set(restored) == set(tree(first))
    assert restored["static/main.abc.js"] == b"console.log(1)\n"
    assert restored["extensions/tour-4.0.1.tgz"] == b"\x1f\x8b tarball"
    for name in ("static/main.abc.js.map", "static/build_log.json"):
        assert str(second).encode() in restored[name] and str(first).encode() not in restored[name]
    assert not list(second.parent.glob(".*restore*"))


def test_an_unknown_or_unreadable_entry_is_a_miss_and_leaves_the_app_dir(tmp_path):
    cache = tmp_path / "cache"
    app = built_app_dir(tmp_path / "one")
    before = tree(app)
    assert not labbuild.restore(cache, "nothing", app)
    labbuild.store(cache, "k1", app)
    (cache / "k1.tar").write_bytes(b"not a tar")
    assert not labbuild.restore(cache, "k1", app)
    assert tree(app) == before
    assert not (cache / "k1.tar").exists()


def test_store_keeps_the_most_recently_used(tmp_path):
    cache = tmp_path / "cache"
    app = built_app_dir(tmp_path / "one")
    for age, key in enumerate(("k3", "k2", "k1")):
        labbuild.store(cache, key, app, keep=5)
        os.utime(cache / f"{key}.json", (1000 + age, 1000 + age))
    assert labbuild.restore(cache, "k3", tmp_path / "elsewhere")      # k3 used last
    labbuild.store(cache, "k0", app, keep=2)
    assert sorted(p.name for p in cache.iterdir()) == ["k0.json", "k0.tar", "k3.json", "k3.tar"]
