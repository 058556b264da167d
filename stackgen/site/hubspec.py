"""stack.yaml's hub section, typed: the JupyterHub the site runs, its own
environment, and the choices of the spawner's options form. What the schema
cannot say (a default outside its range, a package that is not one exact
pin) is checked here, at its line."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stackgen.site.hubform import WARNING_SLACK, seconds
from stackgen.site.yamlsrc import Source

# what the generated configuration imports, beside jupyterhub itself
SPAWNER_PACKAGE = "batchspawner"
CULLER_PACKAGE = "jupyterhub-idle-culler"


@dataclass(frozen=True)
class HubPartition:
    name: str                  # the form's value; the Slurm partition unless `partition` says
    description: str
    partition: str
    constraint: str
    cores: int
    min_nodes: int
    max_nodes: int
    default_nodes: int
    max_time: str              # HH:MM:SS
    default_time: str

    @property
    def slurm_partition(self) -> str:
        return self.partition or self.name


@dataclass(frozen=True)
class Hub:
    jupyterhub: str                       # "6.1.1"
    partitions: tuple[HubPartition, ...]
    packages: tuple[str, ...] = ("batchspawner==1.3.0", "jupyterhub-idle-culler==2.0.0")
    proxy: str = "configurable-http-proxy@5.3.0"
    idle_timeout: int = 3600
    time_warning: int = 300
    reservations: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    ipyparallel: bool = False
    dask: bool = False
    dask_tasks_per_node: int = 1
    # where hub.jupyterhub stands in stack.yaml: (file, line, column), for the
    # version check, which runs later, against the lock
    jupyterhub_at: tuple = ("stack.yaml", 1, 1)

    def requirements(self) -> list[str]:
        """The hub environment's own pins, which `stackgen lock` resolves (hublock.py)."""
        return [f"jupyterhub=={self.jupyterhub}", *self.packages]


def load_hub(source: Source, display: str) -> Hub | None:
    """The hub section of a schema-valid document, or None when it has none."""
    data = source.data.get("hub")
    if data is None:
        return None
    warning = data.get("time_warning", Hub.time_warning)
    partitions = tuple(_partition(source, i, body, warning)
                       for i, body in enumerate(data["partitions"]))
    for i, part in enumerate(partitions):
        first = next(j for j, other in enumerate(partitions) if other.name == part.name)
        if first != i:
            raise source.error(("hub", "partitions", i, "name"),
                               f"partition '{part.name}' is offered twice (also item {first + 1})",
                               "give each choice of the form its own name")
    idle = data.get("idle_timeout", Hub.idle_timeout)
    packages = tuple(_package(source, i, text)
                     for i, text in enumerate(data.get("packages", Hub.packages)))
    names = {canonicalize_name(Requirement(p).name) for p in packages}
    for needed in (SPAWNER_PACKAGE, *([CULLER_PACKAGE] if idle else [])):
        if needed not in names:
            raise source.error(("hub", "packages"), f"the hub's environment lacks {needed}",
                               f"add '{needed}==<version>' to hub.packages: the generated "
                               "configuration imports it" + ("" if needed == SPAWNER_PACKAGE else
                                                              " (or set idle_timeout: 0)"), key=True)
    tasks = data.get("dask_tasks_per_node", 1)
    for i, part in enumerate(partitions):
        if tasks > part.cores:
            raise source.error(("hub", "dask_tasks_per_node"),
                               f"{tasks} dask workers per node, but partition '{part.name}' "
                               f"(item {i + 1}) has {part.cores} cores a node",
                               "propose at most one worker per core")
    line, col = source.where(("hub", "jupyterhub"))
    return Hub(jupyterhub=data["jupyterhub"], partitions=partitions, packages=packages,
               proxy=data.get("proxy", Hub.proxy), idle_timeout=idle, time_warning=warning,
               reservations=tuple(data.get("reservations", [])),
               accounts=tuple(data.get("accounts", [])),
               ipyparallel=data.get("ipyparallel", False), dask=data.get("dask", False),
               dask_tasks_per_node=tasks, jupyterhub_at=(display, line, col))


def _partition(source: Source, i: int, body: dict, warning: int) -> HubPartition:
    part = HubPartition(name=body["name"], description=body.get("description", ""),
                        partition=body.get("partition", ""), constraint=body.get("constraint", ""),
                        cores=body["cores"], min_nodes=body.get("min_nodes", 1),
                        max_nodes=body["max_nodes"], default_nodes=body.get("default_nodes", 1),
                        max_time=body["max_time"], default_time=body.get("default_time", "01:00:00"))
    where = ("hub", "partitions", i)
    if not part.min_nodes <= part.default_nodes <= part.max_nodes:
        raise source.error(where + ("default_nodes",) if "default_nodes" in body else where,
                           f"default_nodes {part.default_nodes} is not within min_nodes "
                           f"{part.min_nodes} and max_nodes {part.max_nodes}",
                           "propose a number of nodes the form accepts")
    if seconds(part.default_time) > seconds(part.max_time):
        raise source.error(where + ("default_time",) if "default_time" in body else where,
                           f"default_time {part.default_time} is longer than max_time {part.max_time}",
                           "propose a time limit the form accepts")
    if seconds(part.default_time) <= warning + WARNING_SLACK:
        raise source.error(where + ("default_time",) if "default_time" in body else where,
                           f"default_time {part.default_time} is not longer than hub.time_warning "
                           f"({warning} s) and a minute: the warning would come at the start",
                           "propose a longer time limit, or a shorter time_warning")
    return part


def _package(source: Source, i: int, text: str) -> str:
    where = ("hub", "packages", i)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise source.error(where, f"invalid requirement {text!r}: {str(exc).splitlines()[0]}",
                           "pin one version, such as 'batchspawner==1.3.0'") from None
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version or req.url:
        raise source.error(where, f"{text!r} is not pinned to one version",
                           "the hub's environment is pinned: write name==X.Y.Z")
    if canonicalize_name(req.name) == "jupyterhub":
        raise source.error(where, "jupyterhub is given by hub.jupyterhub",
                           "remove it from hub.packages")
    return str(req)
