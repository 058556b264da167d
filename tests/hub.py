"""A JupyterHub for the tests, as a site runs it: from PyPI into a venv of its
own, configurable-http-proxy from npm, the configuration `stackgen
hub-config` writes, PAM login of a real account, servers spawned as Slurm
jobs on the two-node test cluster (tests/slurmcluster.py) through
batchspawner's `sudo -E -u USER sbatch`.

The hub runs as root in the host's network namespace and listens on the
cluster's bridge, so jobs on the nodes reach its API and a browser in a
node's namespace reaches its proxy; it reaches a server at its node's
address (the generated spawner asks scontrol for NodeAddr). It sends nothing
anywhere but to the cluster's addresses and 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import jinja2

import slurmhost

HERE = Path(__file__).resolve().parent / "hub"
PYPI = "https://pypi.org/simple"
NPM_REGISTRY = "https://registry.npmjs.org/"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class HubError(AssertionError):
    pass


# -- the test's user ---------------------------------------------------------

@dataclass(frozen=True)
class HubUser:
    name: str
    password: str

    @property
    def pw(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.name)

    @property
    def uid(self) -> int:
        return self.pw.pw_uid


def make_user() -> HubUser:
    """A new unprivileged account with a home and a password, for one session."""
    user = HubUser(f"sghub-{secrets.token_hex(3)}", "Pw-" + secrets.token_urlsafe(12))
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user.name], check=True)
    subprocess.run(["chpasswd"], input=f"{user.name}:{user.password}\n", text=True, check=True)
    return user


def remove_user(user: HubUser) -> None:
    """The account and its home; its processes first, by id (there should be none)."""
    slurmhost.end(lambda: pids_of(user.uid), 10)
    subprocess.run(["userdel", "--remove", user.name], check=False, capture_output=True)


def pids_of(uid: int) -> list[int]:
    """Every process of uid on this host, in any namespace (the nodes' too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def processes_of(uid: int) -> list[str]:
    return [f"{pid}: {command_of(pid)}" for pid in pids_of(uid)]


def wait_no_processes(uid: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_of(uid)


# -- the hub's software ------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """No pip, uv or npm configuration of this machine: PyPI and npm alone."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "UV_", "npm_config_", "NPM_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", **extra}


def run(argv: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise HubError(f"{what}: {' '.join(map(str, argv))} exited with {result.returncode}:\n"
                       f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result


@dataclass(frozen=True)
class HubSoftware:
    python: Path           # the hub venv's
    node_bin: Path         # node for configurable-http-proxy


def install_hub(work: Path, config_dir: Path) -> HubSoftware:
    """The hub's venv from requirements.txt (the hub lock: PyPI only, every
    package pinned and hash-checked, nothing resolved), and configurable-http-proxy
    from npm into the configuration's folder (its package.json), where the
    generated configuration looks for it."""
    venv = work / "hub-venv"
    uv = [sys.executable, "-m", "uv"]
    env = clean_env()
    run([*uv, "venv", "--no-config", "--quiet", "--python", "/usr/bin/python3", venv], "the hub's venv", env=env)
    run([*uv, "pip", "install", "--no-config", "--quiet", "--python", venv / "bin" / "python",
         "--index-url", PYPI, "--no-deps", "--require-hashes", "-r", config_dir / "requirements.txt"],
        "the hub's packages", env=env)
    return HubSoftware(venv / "bin" / "python", install_proxy(work, config_dir))


def install_proxy(work: Path, config_dir: Path) -> Path:
    """`npm install` in config_dir with stackgen's own pinned node
    (stackgen/common/node.py), from the npm registry, with no npm configuration
    of this machine's but its system certificate store (what Python's
    downloads trust too). The folder holding that node and npm."""
    from stackgen.common.node import node_folder

    bin_dir = node_folder(work / "node")
    npmrc = work / "empty-user.npmrc", work / "empty-global.npmrc"
    for path in npmrc:
        path.write_text("")
    env = {"PATH": f"{bin_dir}:{PATH}", "HOME": str(work), "LANG": "C.UTF-8",
           "npm_config_userconfig": str(npmrc[0]), "npm_config_globalconfig": str(npmrc[1]),
           "npm_config_cache": str(work / "npm-cache"), "npm_config_update_notifier": "false"}
    if Path("/etc/ssl/certs/ca-certificates.crt").exists():
        env["npm_config_cafile"] = "/etc/ssl/certs/ca-certificates.crt"
    run([bin_dir / "npm", "install", "--registry", NPM_REGISTRY, "--no-audit", "--no-fund", "--omit=dev"],
        "configurable-http-proxy from npm", env=env, cwd=config_dir, timeout=600)
    return bin_dir


# -- the hub -----------------------------------------------------------------

def pyrepr(value) -> str:
    return repr(value)


def render(template: str, **values) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters["pyrepr"] = pyrepr
    return env.get_template(template).render(**values)


class Hub:
    """`Hub(software, generated_config, cluster, user, work).start()`: JupyterHub
    with the generated configuration and the test site's own settings."""

    def __init__(self, software: HubSoftware, generated: Path, cluster, user: HubUser, work: Path):
        self.software, self.generated, self.cluster, self.user = software, generated, cluster, user
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.work.chmod(0o700)
        address = cluster.controller_address
        self.url = f"http://{address}:{slurmhost.free_port()}"
        self.hub_url = f"http://{address}:{slurmhost.free_port()}"
        self.token = secrets.token_hex(32)
        self.proc: subprocess.Popen | None = None
        self.log_path = work / "jupyterhub.log"

    def start(self) -> Hub:
        config = self.work / "jupyterhub_test_config.py"
        config.write_text(render(
            "test_site_config.py.j2", generated=str(self.generated), work=str(self.work),
            public_url=self.url, hub_url=self.hub_url,
            proxy_api_url=f"http://127.0.0.1:{slurmhost.free_port()}",
            user=self.user.name, api_token=self.token))
        # node on PATH: the proxy's launcher is `#!/usr/bin/env node`; SLURM_CONF:
        # the test cluster's configuration is not in the default place
        env = {"PATH": f"{self.software.node_bin}:{PATH}", "LANG": "C.UTF-8", "HOME": str(self.work),
               "SLURM_CONF": str(self.cluster.conf)}
        argv = [str(self.software.python), "-m", "jupyterhub", "-f", str(config), "--debug"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=self.work, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_up()
        return self

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HubError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.api("GET", "/")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HubError(f"jupyterhub did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        """The hub's REST API as the test's admin service: (status, JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/hub/api{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text

    def server(self, name: str) -> dict | None:
        status, model = self.api("GET", f"/users/{name}")
        assert status == 200, model
        return model["servers"].get("")

    def wait_ready(self, name: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(name)
            if server and server["ready"]:
                return server
            if not server or not server["pending"]:
                raise HubError(f"{name}'s server is neither ready nor starting: {server}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise HubError(f"{name}'s server not ready after {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.5)

    def stop_server(self, name: str, timeout: float = 120) -> None:
        status, model = self.api("DELETE", f"/users/{name}/server")
        assert status in (202, 204), (status, model)
        deadline = time.monotonic() + timeout
        while self.server(name):
            if time.monotonic() > deadline:
                raise HubError(f"{name}'s server still there after {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        """The hub, then what it started in sessions of their own (the proxy, the
        idle culler), found as its descendants before it stops: TERM, then KILL."""
        if not self.proc:
            return
        self._started = descendants(self.proc.pid)
        self.started_commands = [command_of(pid) for pid, _ in self._started]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        slurmhost.end(lambda: [pid for pid, _ in alive(self._started)], 15)

    def leftovers(self) -> list[str]:
        if not self.proc:
            return []
        return [f"process {pid}" for pid, _ in alive(getattr(self, "_started", []))] + \
               [f"process {pid}" for pid in slurmhost.pids_in_pgroups([self.proc.pid])]


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent, start time) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> list[tuple[int, int]]:
    """Every process below root, as (pid, start time): a pid alone could be reused."""
    stats = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        for pid, stat in stats.items():
            if stat and stat[0] == parent:
                found.append((pid, stat[1]))
                todo.append(pid)
    return found


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(processes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(pid, start) for pid, start in processes if (_stat(pid) or (0, None))[1] == start]


# -- Slurm's side ------------------------------------------------------------

def job_ids(cluster, user: HubUser) -> list[str]:
    """The user's jobs squeue shows, in any state it shows."""
    text = cluster.run(["squeue", "-h", "-u", user.name, "-o", "%i"], check=False).stdout
    return text.split()


SUBMIT = "_slurm_rpc_submit_batch_job: "


def probe_job_id(cluster) -> int:
    """A held job, cancelled at once: its id, Slurm's next one at that moment."""
    job = cluster.run(["sbatch", "--parsable", "--hold", "--job-name=stackgen-probe", "--wrap", "true"]).stdout
    job = job.strip().split(";")[0]
    cluster.run(["scancel", job])
    return int(job)


def _submit_lines(cluster, job: int, timeout: float = 10) -> list[str]:
    """slurmctld's log of submissions, up to and with job's."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in cluster.logs["slurmctld"].read_text(errors="replace").splitlines()
                 if SUBMIT in line]
        for i, line in enumerate(lines):
            if f"{SUBMIT}JobId={job} " in line:
                return lines[:i + 1]
        if time.monotonic() > deadline:
            raise HubError(f"slurmctld logged no submission of job {job}")
        time.sleep(0.1)


def submissions_during(cluster, action):
    """action() between two probe jobs: (its result, every batch submission
    slurmctld received in between). Accounting is off on the test cluster, so
    sacct cannot say; slurmctld logs each submission, refused ones too (an
    invalid partition takes no job id, so comparing ids alone would miss it),
    and no other job may take an id between the probes."""
    first = probe_job_id(cluster)
    before = len(_submit_lines(cluster, first))
    result = action()
    last = probe_job_id(cluster)
    between = _submit_lines(cluster, last)[before:-1]
    if last - first - 1 != sum("JobId=" in line for line in between):
        between.append(f"job ids {first + 1}..{last - 1} taken, not all logged")
    return result, between


def artefacts_dir(tmp_path_factory) -> Path:
    """Where screenshots go: $STACKGEN_TEST_ARTEFACTS, or under pytest's tmp dir."""
    chosen = os.environ.get("STACKGEN_TEST_ARTEFACTS")
    folder = Path(chosen) / "hub" if chosen else tmp_path_factory.mktemp("hub-artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def copy_logs(user: HubUser, hub: Hub, into: Path) -> None:
    home = Path(user.pw.pw_dir)
    for log in home.glob("jupyterhub_slurm*.log"):
        shutil.copy(log, into / log.name)
    for log in home.glob(".local/state/stackgen/sessions/*/logs/*.log"):     # the parallel contexts'
        (into / log.parent.parent.name).mkdir(exist_ok=True)
        shutil.copy(log, into / log.parent.parent.name / log.name)
    if hub.log_path.exists():
        shutil.copy(hub.log_path, into / "jupyterhub.log")
