"""Helpers for the end-to-end tests: a login shell with Lmod, as a user has,
an unprivileged user, a JupyterLab server on a free port."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

E2E_USER = "stackgen-e2e"


def ensure_user(name: str = E2E_USER) -> pwd.struct_passwd:
    """An ordinary account with a home and bash, made once per machine."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        return pwd.getpwnam(name)


def login_shell(script: str, *, user: str | None = None, home: Path | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """`bash -l -c script`, as root with HOME=home, or as `user` through runuser -l."""
    if user:
        argv = ["runuser", "-l", user, "-c", script]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    else:
        argv = ["bash", "-l", "-c", script]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "HOME": str(home), "USER": "root"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    result.stdout, result.stderr = plain(result.stdout), plain(result.stderr)
    return result


def plain(text: str) -> str:
    """Output without terminal colours (jupyter labextension list colours its own)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def with_lab(prefix: Path, script: str) -> str:
    modules = shlex.quote(str(prefix / "modules" / "all"))
    return f"module use {modules} && module load jupyterlab && {script}"


class LabServer:
    """`jupyter lab` from the module, on a port the server takes itself (any
    port chosen before it starts may be taken meanwhile by what starts beside
    it: the parallel contexts' controller, scheduler and kernels), with a
    token; its URL is read from its log."""

    URL = re.compile(r"(http://127\.0\.0\.1:[0-9]+)/lab\?token=")

    def __init__(self, prefix: Path, home: Path, user: str | None = None,
                 server: tuple[str, ...] = ("jupyter", "lab")):
        self.url = ""
        self.token = "stackgen-test-token"
        command = with_lab(prefix, shlex.join([
            "exec", *server, "--no-browser", "--ip=127.0.0.1", "--port=0",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={home}",
            *([] if user else ["--allow-root"])]))
        home = Path(home)
        self.log = open(home / "lab.log", "w")
        argv = ["runuser", "-l", user, "-c", command] if user else ["bash", "-l", "-c", command]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if not user:
            env.update(HOME=str(home), USER="root")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.home = home

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("jupyter lab exited:\n" + (self.home / "lab.log").read_text())
            found = self.URL.search((self.home / "lab.log").read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                try:
                    self.get("/api/status")
                    return
                except OSError:
                    pass
            time.sleep(0.5)
        raise AssertionError("jupyter lab did not answer:\n" + (self.home / "lab.log").read_text())

    def get(self, path: str) -> tuple[int, str]:
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen(f"{self.url}{path}{sep}token={self.token}", timeout=30) as r:
            return r.status, r.read().decode()

    def post(self, path: str, body: dict | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body or {}).encode(), method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.post("/api/shutdown")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def page_config(html: str) -> dict:
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert match, "no page config in /lab"
    return json.loads(match.group(1))


# Run inside the module's Python: one cell through a kernel of the running
# server, over its websocket (websocket-client is part of the stack).
KERNEL_CLIENT = r"""
import json, sys, uuid, urllib.request
import websocket
url, token, code = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url + "/api/kernels", data=b'{"name": "python3"}', method="POST",
                             headers={"Authorization": "token " + token})
kernel = json.load(urllib.request.urlopen(req, timeout=60))
# the token in a header too: a JupyterHub server takes it from the URL only
# from browsers (Sec-Fetch-Mode: websocket)
ws = websocket.create_connection(url.replace("http", "ws") + "/api/kernels/" + kernel["id"]
                                 + "/channels?token=" + token, timeout=120,
                                 header=["Authorization: token " + token])
msg_id = uuid.uuid4().hex
ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                               "msg_type": "execute_request", "version": "5.3"},
                    "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": False,
                                "user_expressions": {}, "allow_stdin": False}}))
out = []
# the reply (shell channel) may come before the output (iopub): the cell is
# done when both the reply and iopub's "idle" for it have come
replied = idle = False
while not (replied and idle):
    msg = json.loads(ws.recv())
    if msg.get("parent_header", {}).get("msg_id") != msg_id:
        continue
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
    elif msg["msg_type"] == "error":
        out.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
    elif msg["msg_type"] == "execute_reply":
        replied = True
    elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
        idle = True
print("".join(out), end="")
req = urllib.request.Request(url + "/api/kernels/" + kernel["id"], method="DELETE",
                             headers={"Authorization": "token " + token})
urllib.request.urlopen(req, timeout=60)
"""


def writable_by_others(root: Path) -> list[str]:
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            if path.stat().st_mode & 0o022:
                bad.append(str(path))
    return bad
