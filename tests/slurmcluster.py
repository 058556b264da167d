"""A Slurm cluster of two nodes on this host, for tests (root only).

A bridge in the host's network namespace carries slurmctld's address; each
node is a slurmd in a network namespace of its own, joined to the bridge by
a veth pair, with its own address, hostname, /tmp and /dev/shm. Software and
homes are the host's, shared as on a cluster. munged, slurmctld and the
slurmds are this fixture's own, from Debian's packages, with a configuration
rendered from tests/slurm/ into a folder outside /tmp (so every node sees it).

Names carry a random suffix and the subnet is one no interface or route on
the host uses, so two clusters on one machine do not meet. On stop, exactly
what was started is ended: the daemons' process groups, and every process in
the nodes' namespaces (slurmstepd and job tasks leave slurmd's group).
"""

from __future__ import annotations

import contextlib
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2

import slurmhost as host
from slurmhost import SlurmClusterError

TEMPLATES = Path(__file__).resolve().parent / "slurm"
PMIX_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so")  # what Slurm's pmix plugin opens
# What the fixture runs, and the Debian package each comes from.
COMMANDS = {"slurmctld": "slurmctld", "slurmd": "slurmd", "srun": "slurm-client",
            "munged": "munge", "mungekey": "munge", "mpirun": "openmpi-bin",
            "ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux"}
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def missing_packages() -> list[str]:
    """The Debian packages whose commands (or pmix library) are not on this host."""
    missing = {package for command, package in COMMANDS.items()
               if not shutil.which(command, path=PATH)}
    if not PMIX_LIBRARY.exists():
        missing.add("libpmix-dev")
    return sorted(missing)


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    netns: str  # as `ip netns` names it
    veth: str   # the host's end of its link to the bridge

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns


CHECKOUT = Path(__file__).resolve().parent.parent


class SlurmCluster:
    """`with SlurmCluster() as cluster: cluster.run(["srun", "-N2", "hostname"])`"""

    def __init__(self, node_names: tuple[str, ...] = ("n1", "n2"), cpus: int = 2,
                 shared: tuple[Path, ...] = (), parent: Path = Path("/var/tmp")):
        """shared: folders under /tmp that the nodes see too (the rest of /tmp is
        theirs); the checkout is one when it lies there (CI's clone may): it
        holds the base stand-in, software a cluster's nodes share."""
        self.suffix = secrets.token_hex(3)
        self.cpus = cpus
        wanted = [*map(Path, shared), CHECKOUT]
        self.shared = tuple(dict.fromkeys(p for p in wanted if p.is_relative_to("/tmp")))
        self.parent = Path(parent)
        self.partition = "test"
        self.bridge = f"sgbr-{self.suffix}"
        self._node_names = node_names
        self.nodes: tuple[Node, ...] = ()
        self.controller_address = ""
        self.state: Path | None = None
        self._daemons: dict[str, subprocess.Popen] = {}
        self._pgids: list[int] = []
        self._links: list[str] = []
        self._netns: list[str] = []

    # -- public -----------------------------------------------------------

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def conf(self) -> Path:
        return self.state / "slurm.conf"

    @property
    def scratch(self) -> Path:
        """A folder every node and user sees and may write (batch output, scripts)."""
        return self.state / "scratch"

    @property
    def munge_socket(self) -> Path:
        return self.state / "munge" / "munge.socket"

    @property
    def logs(self) -> dict[str, Path]:
        """Each daemon's log file, by daemon: munged, slurmctld, slurmd-n1, ..."""
        names = ["munged", "slurmctld", *(f"slurmd-{n}" for n in self._node_names)]
        return {name: self.state / "log" / f"{name}.log" for name in names}

    @property
    def env(self) -> dict[str, str]:
        """An environment for srun, sbatch, squeue and scontrol of this cluster."""
        return {"PATH": PATH, "LANG": "C.UTF-8", "SLURM_CONF": str(self.conf)}

    def run(self, argv: list[str], *, user: str | None = None, env: dict | None = None,
            input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        """argv with this cluster's environment (plus env), as root or as `user`
        (from that user's home, which the nodes share); raises if it fails, unless not check."""
        cwd = None
        if user:
            cwd = pwd.getpwnam(user).pw_dir
            argv = ["runuser", "-u", user, "--", *argv]
        result = subprocess.run(argv, env={**self.env, **(env or {})}, cwd=cwd, check=False,
                                input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise SlurmClusterError(
                f"{' '.join(argv)} exited with {result.returncode}:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\nlogs: {self.state / 'log'}")
        return result

    def wait_for_job(self, job_id: str, timeout: float = 120) -> str:
        """The state a job ends in (COMPLETED, FAILED, ...), polled more often than `sbatch --wait` does."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.run(["scontrol", "show", "job", "-o", job_id], timeout=10).stdout
            state = re.search(r"JobState=(\S+)", text).group(1)
            if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"):
                return state
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"job {job_id} still {state} after {timeout:.0f} s; "
                                        f"logs: {self.state / 'log'}")
            time.sleep(0.1)

    def start(self) -> SlurmCluster:
        missing = missing_packages()
        if missing:
            raise SlurmClusterError(
                f"the Slurm test cluster needs Debian packages: {' '.join(missing)} "
                "(./bootstrap env installs them)")
        try:
            self._make_state()
            self._make_network()
            self._write_conf()
            self._start_munged()
            self._start_slurmctld()
            for node in self.nodes:
                self._start_slurmd(node)
            self._wait_for_nodes()
        except BaseException:
            self.stop(keep_logs=True)
            raise
        return self

    def stop(self, keep_logs: bool = False) -> None:
        """Cancel jobs, end what this cluster started, remove what it made
        (but the logs with keep_logs, as after a failed start)."""
        if "slurmctld" in self._daemons:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._cancel_jobs()
        for node in self.nodes:
            if node.netns in self._netns:
                host.end(lambda node=node: host.pids_in_netns(node.netns_path), STOP_TIMEOUT)
        for daemon in reversed(self._daemons.values()):  # slurmds, slurmctld, munged
            host.end_group(daemon, STOP_TIMEOUT)
        self._daemons.clear()
        for netns in reversed(self._netns):
            host.ip("netns", "delete", netns, check=False)
        for link in reversed(self._links):
            if host.link_exists(link):
                host.ip("link", "delete", link, check=False)
        self._netns, self._links = [], []
        if self.state and keep_logs:
            for path in self.state.iterdir():
                if path.is_dir() and path.name != "log":
                    shutil.rmtree(path)
                elif not path.is_dir():
                    path.unlink()
        elif self.state:
            shutil.rmtree(self.state, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What this cluster made that still exists (empty after stop())."""
        left = [f"process {pid}" for pid in host.pids_in_pgroups(self._pgids)]
        for node in self.nodes:
            if node.netns_path.exists():
                left.append(f"network namespace {node.netns}")
                left += [f"process {pid} in {node.netns}" for pid in host.pids_in_netns(node.netns_path)]
            if host.link_exists(node.veth):
                left.append(f"link {node.veth}")
        if host.link_exists(self.bridge):
            left.append(f"bridge {self.bridge}")
        if self.state and self.state.exists():
            left.append(f"folder {self.state}")
        return left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- start ------------------------------------------------------------

    def _make_state(self) -> None:
        # Outside /tmp, which each node has its own of; readable by every
        # user (slurm.conf, munge's socket), writable by root alone.
        self.state = Path(tempfile.mkdtemp(prefix=f"stackgen-slurm-{self.suffix}-", dir=self.parent))
        self.state.chmod(0o755)
        for sub in ("log", "run", "spool", "slurmctld", "munge", "stash"):
            (self.state / sub).mkdir(mode=0o755)
        self.scratch.mkdir()
        self.scratch.chmod(0o1777)

    def _make_network(self) -> None:
        subnet = host.free_subnet()
        hosts = subnet.hosts()
        self.controller_address = str(next(hosts))
        host.ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        host.ip("addr", "add", f"{self.controller_address}/{subnet.prefixlen}", "dev", self.bridge)
        host.ip("link", "set", self.bridge, "up")
        nodes = []
        for name in self._node_names:
            node = Node(name, str(next(hosts)), f"sg-{self.suffix}-{name}", f"sgv-{self.suffix}-{name}")
            host.ip("netns", "add", node.netns)
            self._netns.append(node.netns)
            host.ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
            self._links.append(node.veth)
            host.ip("link", "set", node.veth, "master", self.bridge, "up")
            host.ip("-n", node.netns, "addr", "add", f"{node.address}/{subnet.prefixlen}", "dev", "eth0")
            host.ip("-n", node.netns, "link", "set", "eth0", "up")
            host.ip("-n", node.netns, "link", "set", "lo", "up")
            nodes.append(node)
        self.nodes = tuple(nodes)

    def _write_conf(self) -> None:
        templates = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                       undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        text = templates.get_template("slurm.conf.j2").render(
            cluster_name=f"sg{self.suffix}", hostname=socket.gethostname().split(".")[0],
            controller_address=self.controller_address, nodes=self.nodes, cpus=self.cpus,
            partition=self.partition, slurmctld_port=host.free_port(), slurmd_port=host.free_port(),
            munge_socket=self.munge_socket, state=self.state)
        self.conf.write_text(text)
        self.conf.chmod(0o644)

    def _start_munged(self) -> None:
        munge = self.state / "munge"
        key = munge / "munge.key"
        subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
        self._spawn("munged", ["munged", "-F", f"--socket={self.munge_socket}", f"--key-file={key}",
                               f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
                               f"--log-file={self.logs['munged']}"])
        self._wait(lambda: self.munge_socket.is_socket(), "munged", ["munged"])

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])

        def answers() -> bool:
            return self.run(["scontrol", "ping"], check=False, timeout=10).stdout.count("UP") > 0
        self._wait(answers, "slurmctld", ["munged", "slurmctld"])

    def _start_slurmd(self, node: Node) -> None:
        stash = self.state / "stash" / node.name
        stash.mkdir()
        (self.state / "spool" / node.name).mkdir()
        self._spawn(f"slurmd-{node.name}", [
            "nsenter", f"--net={node.netns_path}", "--",
            "unshare", "--mount", "--uts", "--propagation", "private", "--",
            str(TEMPLATES / "node.sh"), node.name, str(stash), *map(str, self.shared)])

    def _wait_for_nodes(self) -> None:
        def idle() -> bool:
            return not self._nodes_not_idle()
        names = ["munged", "slurmctld", *(f"slurmd-{n.name}" for n in self.nodes)]
        self._wait(idle, "the nodes", names, waiting=self._nodes_not_idle)

    def _nodes_not_idle(self) -> list[str]:
        text = self.run(["scontrol", "show", "nodes", "-o"], check=False, timeout=10).stdout
        states = {}
        for line in text.splitlines():
            name, state = re.search(r"NodeName=(\S+) .*?State=(\S+)", line).groups()
            reason = re.search(r"Reason=(.*?)(?: \[|$)", line)
            states[name] = state + (f": {reason.group(1)}" if reason else "")
        return [f"{node.name} ({states.get(node.name, 'unknown')}; log {self.logs['slurmd-' + node.name]})"
                for node in self.nodes if states.get(node.name) != "IDLE"]

    def _spawn(self, name: str, argv: list[str]) -> None:
        # Its own process group (and session), ended as a whole on stop; its
        # own output next to its log, for what it says before the log opens.
        with open(self.state / "log" / f"{name}.out", "wb") as out:
            daemon = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self._daemons[name] = daemon
        self._pgids.append(daemon.pid)

    def _wait(self, ready, what: str, daemons: list[str], waiting=None) -> None:
        """Poll ready() until true; fail at once if one of daemons ends, or at the deadline."""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            for name in daemons:
                if self._daemons[name].poll() is not None:
                    raise SlurmClusterError(f"{name} ended while waiting for {what}: "
                                            f"{self._tail(name)}")
            if time.monotonic() > deadline:
                detail = "; ".join(waiting()) if waiting else self._tail(daemons[-1])
                raise SlurmClusterError(f"{what} not ready after {START_TIMEOUT:.0f} s: {detail}")
            time.sleep(0.1)

    def _tail(self, name: str) -> str:
        parts = []
        for path in (self.logs.get(name), self.state / "log" / f"{name}.out"):
            if path and path.exists():
                lines = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"\n--- {path}\n" + "\n".join(lines))
        return "".join(parts) or f"(no log in {self.state / 'log'})"

    # -- stop -------------------------------------------------------------

    def _cancel_jobs(self) -> None:
        def queue() -> list[str]:
            return self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10).stdout.split()
        jobs = queue()
        if jobs:
            self.run(["scancel", *jobs], check=False, timeout=10)
            deadline = time.monotonic() + STOP_TIMEOUT
            while queue() and time.monotonic() < deadline:
                time.sleep(0.1)
