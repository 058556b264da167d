"""Asking the npm registry for one version (stackgen.common.npmdist): a lock
asks for hundreds, so a transient failure is asked again, a lasting one or a
missing package is said once. The registry is replaced here: pure logic."""

import io
import json
import urllib.error

import pytest

from stackgen.common import npmdist
from stackgen.common.errors import StackgenError

META = {"version": "2.0.5", "dist": {"tarball": "https://registry.example/v.tgz", "integrity": "sha512-AAAA"}}


class Answer(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def registry(monkeypatch, *failures):
    """urlopen that raises `failures` in turn, then answers META; the calls made."""
    calls = []

    def urlopen(request, timeout):
        calls.append(request.full_url)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return Answer(json.dumps(META).encode())
    monkeypatch.setattr(npmdist.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(npmdist, "RETRY_PAUSES", (0.0, 0.0))
    return calls


def http_error(code):
    return urllib.error.HTTPError("https://registry.example", code, "x", {}, None)


def test_a_lost_dns_answer_or_a_registry_error_is_asked_again(monkeypatch):
    calls = registry(monkeypatch, urllib.error.URLError(OSError(-3, "Temporary failure in name resolution")),
                     http_error(503))
    found = npmdist.dist("@lumino/virtualdom", "2.0.5")
    assert (found.version, found.integrity, len(calls)) == ("2.0.5", "sha512-AAAA", 3)
    assert calls[0].endswith("/@lumino%2Fvirtualdom/2.0.5")     # a scoped name, as npm asks


def test_a_lasting_failure_is_said_after_the_last_try(monkeypatch):
    lost = urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
    calls = registry(monkeypatch, lost, lost, lost)
    with pytest.raises(StackgenError, match="asking .* for x@1 failed: .*name resolution") as err:
        npmdist.dist("x", "1")
    assert len(calls) == 3 and "check the network" in err.value.hint


def test_a_missing_package_is_said_at_once(monkeypatch):
    calls = registry(monkeypatch, http_error(404))
    with pytest.raises(StackgenError, match="npm package nope@1 does not exist"):
        npmdist.dist("nope", "1")
    assert len(calls) == 1
