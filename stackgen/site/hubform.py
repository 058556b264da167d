"""The hub's options form, pure: its HTML, the validation of its answers, and
what validated answers become (the job's #SBATCH lines and the launcher's
variables).

`stackgen hub-config` copies this file whole into the generated
stackgen_hub_config.py, because the hub's environment holds jupyterhub and
batchspawner but not stackgen: it imports the standard library alone (a
test keeps it so). `site` is the dict the generator fills from stack.yaml's
hub section; an answer is never trusted past `answers()`.
"""

import html
import re

# the form's fields, a contract with anyone posting the form (tests, scripts)
FIELDS = ("partition", "reservation", "nodes", "time", "account", "ipyparallel",
          "ipyparallel_procs_per_node", "dask", "dask_tasks_per_node")
IPYPARALLEL_ON = "mpi"        # the ipyparallel box's value: engines in one MPI world
DASK_ON = "on"                # the dask box's value
WARNING_SIGNAL = "USR1"       # what Slurm sends the job's batch process before its end
WARNING_SLACK = 60            # seconds Slurm may send it early (its event resolution)
_TIME = re.compile(r"([0-9]{1,4}):([0-5][0-9]):([0-5][0-9])")
_COUNT = re.compile(r"[0-9]{1,6}")
_PLAIN = re.compile(r"[A-Za-z0-9_.,:@%/+=-]+")


class FormError(ValueError):
    """An answer outside what the site offers; the message names the field."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


def seconds(hhmmss):
    hours, minutes, secs = (int(part) for part in hhmmss.split(":"))
    return hours * 3600 + minutes * 60 + secs


def _shown(value):
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _one(raw, field):
    """The one value of a field: a form gives lists, stored options plain values."""
    value = raw.get(field)
    if isinstance(value, list):
        if len(value) > 1:
            raise FormError(field, "given more than once")
        value = value[0] if value else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FormError(field, f"expected text, got {type(value).__name__}")
    value = str(value)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise FormError(field, f"{_shown(value)} holds control characters")
    return value.strip()


def _choice(raw, field, offered, default):
    value = _one(raw, field)
    if value is None:
        return default
    if value not in offered:
        listed = ", ".join(o for o in offered if o) or "none"
        raise FormError(field, f"{_shown(value)} is not offered here; choose one of: {listed}")
    return value


def _count(raw, field, low, high, default, what):
    value = _one(raw, field)
    if value is None or value == "":
        return default
    if not _COUNT.fullmatch(value) or not low <= int(value) <= high:
        raise FormError(field, f"{_shown(value)} is not a whole number from {low} to {high} {what}")
    return str(int(value))


def _time(raw, part, warning):
    value = _one(raw, "time")
    if value is None or value == "":
        return part["default_time"]
    match = _TIME.fullmatch(value)
    if not match:
        raise FormError("time", f"{_shown(value)} is not a time limit as HH:MM:SS")
    if seconds(value) > seconds(part["max_time"]):
        raise FormError("time", f"{value} is longer than partition {part['name']} allows "
                                f"({part['max_time']})")
    if seconds(value) <= warning + WARNING_SLACK:
        raise FormError("time", f"{value} is too short: the job is warned {warning} s before its "
                                f"end, so ask for more than {warning + WARNING_SLACK} s")
    return "%02d:%s:%s" % (int(match.group(1)), match.group(2), match.group(3))


def _flag(raw, field, on):
    value = _one(raw, field)
    if value is None or value == "":
        return ""
    if value != on:
        raise FormError(field, f"{_shown(value)} is not a value of this box (ticked: {on!r})")
    return on


def answers(site, raw):
    """The validated answers, every field present, as strings; raise FormError for
    the first answer the site does not offer. Its own output passes unchanged."""
    names = [p["name"] for p in site["partitions"]]
    partition = _choice(raw, "partition", names, names[0])
    part = site["partitions"][names.index(partition)]
    cores = part["cores"]
    return {
        "partition": partition,
        "reservation": _choice(raw, "reservation", ["", *site["reservations"]], ""),
        "nodes": _count(raw, "nodes", part["min_nodes"], part["max_nodes"], str(part["default_nodes"]),
                        f"(nodes of partition {partition})"),
        "time": _time(raw, part, site["time_warning"]),
        "account": _choice(raw, "account", ["", *site["accounts"]], ""),
        "ipyparallel": _flag(raw, "ipyparallel", IPYPARALLEL_ON),
        "ipyparallel_procs_per_node": _count(raw, "ipyparallel_procs_per_node", 1, cores, "",
                                             f"(cores of a {partition} node)"),
        "dask": _flag(raw, "dask", DASK_ON),
        "dask_tasks_per_node": _count(raw, "dask_tasks_per_node", 1, cores,
                                      str(min(site["dask_tasks_per_node"], cores)),
                                      f"(cores of a {partition} node)"),
    }


def sbatch_word(value):
    """One argument as sbatch reads an #SBATCH line (its _get_argument): as it is
    when plain, else in double quotes, where a backslash takes the next
    character as it is."""
    value = str(value)
    if _PLAIN.fullmatch(value):
        return value
    return '"' + re.sub(r'(["\\])', r"\\\1", value) + '"'


def sbatch_lines(site, chosen, homedir):
    """The #SBATCH lines of validated answers: whole nodes (the contexts use every
    core), and the warning signal to the batch process before the time limit."""
    part = next(p for p in site["partitions"] if p["name"] == chosen["partition"])
    options = [("job-name", "jupyterhub"), ("output", f"{homedir}/jupyterhub_slurmspawner_%j.log"),
               ("chdir", homedir), ("export", "ALL"), ("partition", part["partition"] or part["name"]),
               ("nodes", chosen["nodes"]), ("exclusive", None), ("time", chosen["time"]),
               ("signal", f"B:{WARNING_SIGNAL}@{site['time_warning']}")]
    if part["constraint"]:
        options.append(("constraint", part["constraint"]))
    if chosen["reservation"]:
        options.append(("reservation", chosen["reservation"]))
    if chosen["account"]:
        options.append(("account", chosen["account"]))
    return [f"#SBATCH --{name}" + ("" if value is None else f"={sbatch_word(value)}")
            for name, value in options]


def launcher_env(chosen):
    """The launcher's variables (stackgen-singleuser), passed through the job's
    environment: the script's text holds none of them."""
    env = {"STACKGEN_IPYPARALLEL": "1" if chosen["ipyparallel"] else "0",
           "STACKGEN_DASK": "1" if chosen["dask"] else "0"}
    if chosen["ipyparallel"]:
        env["STACKGEN_IPYPARALLEL_MPI"] = "1"
        if chosen["ipyparallel_procs_per_node"]:
            env["STACKGEN_IPYPARALLEL_PROCS_PER_NODE"] = chosen["ipyparallel_procs_per_node"]
    if chosen["dask"]:
        env["STACKGEN_DASK_TASKS_PER_NODE"] = chosen["dask_tasks_per_node"]
    return env


def batch_script(site, chosen, homedir, command):
    """The whole job: its #SBATCH lines, then the launcher, which becomes the batch
    process (exec), so Slurm's warning signal reaches it. A login shell: the
    hub's environment has no MODULEPATH, and the base module (cray-python) is
    found on the system's, which a login shell sets."""
    return "\n".join(["#!/bin/bash -l", *sbatch_lines(site, chosen, homedir), "",
                      f"exec {command}", ""])


def form_html(site):
    """The form's fields with the site's choices (JupyterHub adds <form> and the button)."""
    esc = html.escape
    first = site["partitions"][0]

    def options(values, labels, selected):
        return "".join(f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(t)}</option>'
                       for v, t in zip(values, labels))

    parts = options([p["name"] for p in site["partitions"]],
                    [f"{p['description'] or p['name']} (up to {p['max_nodes']} nodes, "
                     f"{p['max_time']}, {p['cores']} cores a node)" for p in site["partitions"]],
                    first["name"])
    most = max(p["max_nodes"] for p in site["partitions"])
    cores = max(p["cores"] for p in site["partitions"])
    rows = [
        ("partition", "Partition", f'<select name="partition" id="partition">{parts}</select>'),
        ("reservation", "Reservation", '<select name="reservation" id="reservation">'
         + options(["", *site["reservations"]], ["none", *site["reservations"]], "") + "</select>"),
        ("nodes", "Number of nodes", f'<input type="number" name="nodes" id="nodes" min="1" '
         f'max="{most}" value="{first["default_nodes"]}">'),
        ("time", "Job duration (HH:MM:SS)", f'<input type="text" name="time" id="time" '
         f'pattern="[0-9]{{1,4}}:[0-5][0-9]:[0-5][0-9]" value="{esc(first["default_time"])}">'),
        ("account", "Account", '<select name="account" id="account">'
         + options(["", *site["accounts"]], ["your default account", *site["accounts"]], "") + "</select>"),
        ("ipyparallel", "Start IPyParallel automatically with MPI?",
         f'<input type="checkbox" name="ipyparallel" id="ipyparallel" value="{IPYPARALLEL_ON}"'
         + (" checked" if site["ipyparallel"] else "") + ">"),
        ("ipyparallel_procs_per_node", "How many processes per node? (empty: one per core)",
         f'<input type="number" name="ipyparallel_procs_per_node" id="ipyparallel_procs_per_node" '
         f'min="1" max="{cores}" placeholder="one per core">'),
        ("dask", "Start Dask.distributed automatically?",
         f'<input type="checkbox" name="dask" id="dask" value="{DASK_ON}"'
         + (" checked" if site["dask"] else "") + ">"),
        ("dask_tasks_per_node", "How many tasks per node? (threads = cores / tasks)",
         f'<input type="number" name="dask_tasks_per_node" id="dask_tasks_per_node" min="1" '
         f'max="{cores}" value="{site["dask_tasks_per_node"]}">'),
    ]
    return "\n".join(f'<div class="form-group"><label for="{field}">{esc(label)}</label>\n{widget}</div>'
                     for field, label, widget in rows) + "\n"
