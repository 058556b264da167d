"""The allocation a session runs on: the Slurm job's nodes and this node's
address, or this host alone outside Slurm (local mode)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from stackgen.common.errors import InputError
from stackgen.common.run import run

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Allocation:
    job_id: str | None          # None: local mode, no Slurm
    nodes: tuple[str, ...]      # the job's nodes; local: this host
    here: str                   # the node this command runs on
    address: str                # where a controller or scheduler here listens
    cpus_per_node: int

    @property
    def slurm(self) -> bool:
        return self.job_id is not None


def cpus_per_node(value: str | None, default: int) -> int:
    """SLURM_JOB_CPUS_PER_NODE ("2(x2)", "4,2") -> the first node's count."""
    match = re.match(r"(\d+)", value or "")
    return int(match.group(1)) if match else default


def node_address(scontrol_line: str) -> str | None:
    """NodeAddr of one `scontrol show node -o` line."""
    match = re.search(r"\bNodeAddr=(\S+)", scontrol_line)
    return match.group(1) if match else None


def interface_address(name: str) -> str:
    """The IPv4 address of a network interface of this node (stack.yaml's interface)."""
    import psutil  # in the stack: ipyparallel needs it
    for addr in psutil.net_if_addrs().get(name, ()):
        if addr.family == socket.AF_INET:
            return addr.address
    raise InputError(f"this node has no IPv4 address on interface {name!r}",
                     "set parallel.interface in stack.yaml to an interface every node has "
                     f"(here: {', '.join(sorted(psutil.net_if_addrs()))})")


def detect(env: dict[str, str] | None = None, interface: str = "",
           address: str = "") -> Allocation:
    """This job's allocation, or the local host when not in a Slurm job.
    `address` overrides where contexts listen; `interface` picks it by interface."""
    env = dict(os.environ if env is None else env)
    here = env.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    job = env.get("SLURM_JOB_ID")
    if not job:
        return Allocation(None, (here,), here, address or
                          (interface_address(interface) if interface else LOOPBACK), cpus)
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or here
    names = run(["scontrol", "show", "hostnames", nodelist], env=env,
                describe="listing the job's nodes").stdout.split()
    if not address:
        address = interface_address(interface) if interface else _slurm_address(here, env)
    return Allocation(job, tuple(names) or (here,), here, address,
                      cpus_per_node(env.get("SLURM_JOB_CPUS_PER_NODE"), cpus))


def _slurm_address(node: str, env: dict[str, str]) -> str:
    """The address Slurm reaches this node at (NodeAddr), else its name's."""
    line = run(["scontrol", "show", "node", "-o", node], env=env, check=False).stdout
    found = node_address(line)
    if found and found != node:
        return found
    try:
        return socket.gethostbyname(node)
    except OSError:
        raise InputError(f"cannot tell the address of node {node}",
                         "set parallel.interface in stack.yaml") from None
