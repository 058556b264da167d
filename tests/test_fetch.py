"""The wheelhouse, against a local HTTP server: verified downloads, resume,
refusal of a wrong file, no network when everything is present."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from stackgen.common.download import HashMismatch
from stackgen.site.fetch import fetch
from stackgen.site.lockfile import Lock, LockedPackage, LockHeader
from stackgen.site.npm import LockedNpm

HEADER = LockHeader(stack="demo", version="1", spec_digest="sha256:0", requirements=(),
                    depends=(), base_module="cray-python/3.11",
                    base_python="cpython 3.11.7 linux-x86_64", base_provides=(),
                    base_digest="sha256:0", resolver="uv 0")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        RangeHandler.requests.append((self.path, self.headers.get("Range")))
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(data):           # as PyPI's CDN answers
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def index(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(RangeHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def package(served, url, name, content: bytes) -> LockedPackage:
    file = f"{name}-1.0-py3-none-any.whl"
    (served / file).write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    return LockedPackage(name=name, version="1.0", hashes=(f"sha256:{digest}",), file=file,
                         sha256=digest, url=f"{url}/{file}")


def test_fetch_downloads_verifies_and_then_needs_no_network(index, tmp_path):
    served, url = index
    pkgs = tuple(package(served, url, f"p{i}", bytes([i]) * (1000 + i)) for i in range(5))
    lock = Lock(HEADER, pkgs)
    house = tmp_path / "house"
    report = fetch(lock, house)
    assert report.downloaded == 5
    assert sorted(p.name for p in house.iterdir()) == sorted(p.file for p in pkgs)
    RangeHandler.requests.clear()
    dead = Lock(HEADER, tuple(LockedPackage(**{**p.__dict__, "url": "http://127.0.0.1:9/x"})
                              for p in pkgs))
    again = fetch(dead, house)
    assert again.downloaded == 0 and again.present == 5
    assert RangeHandler.requests == []


def test_fetch_resumes_a_partial_download(index, tmp_path):
    served, url = index
    content = bytes(range(256)) * 100
    pkg = package(served, url, "big", content)
    house = tmp_path / "house"
    house.mkdir()
    (house / f".{pkg.file}.part").write_bytes(content[:1000])
    fetch(Lock(HEADER, (pkg,)), house)
    assert (house / pkg.file).read_bytes() == content
    assert RangeHandler.requests == [(f"/{pkg.file}", "bytes=1000-")]


def test_a_wrong_file_in_the_wheelhouse_is_deleted_and_refused(index, tmp_path):
    served, url = index
    pkg = package(served, url, "good", b"the real wheel")
    house = tmp_path / "house"
    house.mkdir()
    (house / pkg.file).write_bytes(b"tampered")
    with pytest.raises(HashMismatch) as err:
        fetch(Lock(HEADER, (pkg,)), house)
    assert pkg.file in err.value.message and err.value.exit_code == 2
    assert not (house / pkg.file).exists()
    assert RangeHandler.requests == []


def test_a_download_with_the_wrong_content_is_refused(index, tmp_path):
    served, url = index
    pkg = package(served, url, "swapped", b"what the lock names")
    (served / pkg.file).write_bytes(b"something else")
    house = tmp_path / "house"
    with pytest.raises(HashMismatch):
        fetch(Lock(HEADER, (pkg,)), house)
    assert list(house.iterdir()) == []


def test_npm_tarballs_are_fetched_and_checked_by_their_integrity(index, tmp_path):
    import base64
    served, url = index
    content = b"a source extension"
    (served / "theme-1.0.0.tgz").write_bytes(content)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(content).digest()).decode()
    tarball = LockedNpm("lab", "theme", "1.0.0", integrity, f"{url}/theme-1.0.0.tgz")
    house = tmp_path / "house"
    assert fetch(Lock(HEADER, (), (tarball,)), house).downloaded == 1
    assert (house / "theme-1.0.0.tgz").read_bytes() == content
    (house / "theme-1.0.0.tgz").write_bytes(b"swapped")
    with pytest.raises(HashMismatch) as err:
        fetch(Lock(HEADER, (), (tarball,)), house)
    assert "npm theme@1.0.0" in err.value.message
