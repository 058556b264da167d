"""What the Slurm test cluster (tests/slurmcluster.py) does to this host:
links and namespaces, a free subnet and port, and ending processes it
started, found by process group or by network namespace."""

from __future__ import annotations

import ipaddress
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path


class SlurmClusterError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SlurmClusterError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def free_subnet() -> ipaddress.IPv4Network:
    """A private /24 that no address or route of this host overlaps."""
    text = "".join(subprocess.run(["ip", "-o", "-4", what], check=True, capture_output=True,
                                  text=True).stdout for what in ("addr", "route"))
    used = [ipaddress.ip_network(m, strict=False)
            for m in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", text)]
    rng = random.Random()
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{rng.randint(128, 254)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise SlurmClusterError("no free private /24 for the test cluster's bridge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def pids_in_netns(netns: Path) -> list[int]:
    try:
        target = os.stat(netns)
    except FileNotFoundError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ns = os.stat(entry / "ns" / "net")
            except OSError:
                continue
            if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino):
                pids.append(int(entry.name))
    return pids


def pids_in_pgroups(pgids: list[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) in pgids:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def end(pids, timeout: float) -> None:
    """SIGTERM to pids(), then SIGKILL to what is left at the deadline."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pids():
            return


def end_group(daemon: subprocess.Popen, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(daemon.pid, sig)
        except ProcessLookupError:
            pass
        try:
            daemon.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
