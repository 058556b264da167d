"""Readiness messages: which node's engines or workers did not come up, and
where to look. Pure."""

from __future__ import annotations

from collections.abc import Callable


def missing_message(expected: dict[str, int], seen: dict[str, int], what: str,
                    log_of: Callable[[str], str]) -> str:
    """'n2: 0 of 2 engines (log: ...)', for every node short of its count."""
    short = [f"{node}: {seen.get(node, 0)} of {count} {what} (log: {log_of(node)})"
             for node, count in expected.items() if seen.get(node, 0) < count]
    strangers = sorted(set(seen) - set(expected))
    if strangers:
        short.append(f"{what} registered from unexpected hosts: {', '.join(strangers)}")
    return "; ".join(short) or f"all {what} registered"
