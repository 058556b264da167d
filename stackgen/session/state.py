"""The state of one context of a session (`<session>/<name>.json`): what
was asked, what runs where, which logs to read. Versioned, written
atomically, read in one place; `stackgen parallel status` shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from stackgen.common.errors import InputError
from stackgen.common.fsutil import write_atomic
from stackgen.session.procs import Proc, is_running

FORMAT = 1
KINDS = ("ipyparallel", "dask")
STATES = ("starting", "ready", "failed", "stopped")


@dataclass(frozen=True)
class Context:
    name: str                             # "ipyparallel" or "dask"
    state: str                            # one of STATES
    detail: str = ""                      # what the user should know: why it failed, what is up
    address: str = ""                     # where the controller or scheduler listens
    job_id: str | None = None             # the Slurm job, None in local mode
    per_node: dict[str, int] = field(default_factory=dict)  # engines or workers asked for, by node
    procs: tuple[Proc, ...] = ()          # what the session started on this node
    step_name: str = ""                   # the name of its srun steps
    logs: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)  # kind-specific: dashboard, files, options

    @property
    def expected(self) -> int:
        return sum(self.per_node.values())

    def running(self) -> list[Proc]:
        return [p for p in self.procs if is_running(p)]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name, "state": self.state, "detail": self.detail,
                "address": self.address, "job_id": self.job_id, "per_node": dict(self.per_node),
                "procs": [p.to_dict() for p in self.procs], "step_name": self.step_name,
                "logs": list(self.logs), "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Context:
        if data.get("format") != FORMAT:
            raise InputError(f"{where}: context state of format {data.get('format')!r}, "
                             f"this stackgen reads format {FORMAT}",
                             "it was written by another stackgen: stop it with that one, "
                             "or remove the file")
        return cls(name=data["name"], state=data["state"], detail=data.get("detail", ""),
                   address=data.get("address", ""), job_id=data.get("job_id"),
                   per_node={str(k): int(v) for k, v in data.get("per_node", {}).items()},
                   procs=tuple(Proc.from_dict(p) for p in data.get("procs", [])),
                   step_name=data.get("step_name", ""), logs=tuple(data.get("logs", [])),
                   info=dict(data.get("info", {})))

    def but(self, **changes) -> Context:
        return replace(self, **changes)


def write(path: Path, context: Context) -> None:
    write_atomic(path, json.dumps(context.to_dict(), indent=1, sort_keys=True) + "\n", mode=0o600)


def read(path: Path) -> Context | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not a context state file: {exc}") from None
    return Context.from_dict(data, str(path))
