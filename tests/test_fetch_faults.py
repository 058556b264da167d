"""The wheelhouse under faults: a download killed before its rename, a part
the server cannot resume, a full disk and a read-only wheelhouse. Each is
named for what it is, leaves no partial file behind and no traceback."""

from __future__ import annotations

import os
import subprocess

import pytest
from test_fetch import HEADER, RangeHandler, index, package  # noqa: F401  (index: a fixture)

from stackgen.common.download import DiskError, HashMismatch
from stackgen.site.fetch import fetch
from stackgen.site.lockfile import Lock

from conftest import small_disk


def test_a_complete_part_left_by_a_killed_download_is_verified_and_kept(index, tmp_path):  # noqa: F811
    served, url = index
    pkg = package(served, url, "whole", b"w" * 5000)
    house = tmp_path / "house"
    house.mkdir()
    (house / f".{pkg.file}.part").write_bytes(b"w" * 5000)       # every byte, never renamed
    report = fetch(Lock(HEADER, (pkg,)), house)
    assert report.downloaded == 1 and RangeHandler.requests == []
    assert (house / pkg.file).read_bytes() == b"w" * 5000
    assert not list(house.glob(".*.part"))


def test_a_part_the_server_cannot_resume_is_fetched_afresh(index, tmp_path):  # noqa: F811
    served, url = index
    pkg = package(served, url, "afresh", b"a" * 3000)
    house = tmp_path / "house"
    house.mkdir()
    (house / f".{pkg.file}.part").write_bytes(b"x" * 3000)       # as long, other bytes
    fetch(Lock(HEADER, (pkg,)), house)
    assert (house / pkg.file).read_bytes() == b"a" * 3000
    assert [r[1] for r in RangeHandler.requests] == ["bytes=3000-", None]


def test_a_full_disk_is_named_as_one_and_leaves_no_part(index, tmp_path):  # noqa: F811
    served, url = index
    pkgs = (package(served, url, "big", os.urandom(200_000)),)
    with small_disk(tmp_path / "house") as house:
        with pytest.raises(DiskError) as err:
            fetch(Lock(HEADER, pkgs), house)
        assert "No space left on device" in err.value.message
        assert "a disk error, not a network one" in err.value.message
        assert "free space" in err.value.hint
        assert list(house.iterdir()) == []


def test_a_read_only_wheelhouse_is_named_as_one(index, tmp_path):  # noqa: F811
    served, url = index
    good = package(served, url, "good", b"g" * 100)
    with small_disk(tmp_path / "house") as house:
        (house / good.file).write_bytes(b"not what the lock names")
        subprocess.run(["mount", "-o", "remount,ro", str(house)], check=True)
        with pytest.raises(HashMismatch) as err:
            fetch(Lock(HEADER, (good,)), house)
        assert "cannot be deleted: Read-only file system" in err.value.message
        subprocess.run(["mount", "-o", "remount,rw", str(house)], check=True)
        (house / good.file).unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(house)], check=True)
        with pytest.raises(DiskError, match="Read-only file system"):
            fetch(Lock(HEADER, (good,)), house)
