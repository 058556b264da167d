"""Which modules a build must (re)build: by the easyconfig's content only."""

from __future__ import annotations

from pathlib import Path

from stackgen.site.build import Module, needs_build


def installed(prefix: Path, module: Module, text: str) -> None:
    module.modulefile(prefix).parent.mkdir(parents=True)
    module.modulefile(prefix).write_text("-- module\n")
    module.installed_easyconfig(prefix).parent.mkdir(parents=True)
    module.installed_easyconfig(prefix).write_text(text)
    digest = module.installdir(prefix) / "share" / "stackgen" / "easyconfig-digest"
    digest.parent.mkdir(parents=True)
    digest.write_text("sha256:0\n")
    (digest.parent / "base-modulepath").write_text("")


def test_a_module_is_rebuilt_only_when_its_own_easyconfig_changed(tmp_path):
    ecs = tmp_path / "easyconfigs"
    ecs.mkdir()
    prefix = tmp_path / "prefix"
    common = Module("common", "1", ecs / "common-1.eb")
    lab = Module("lab", "1", ecs / "lab-1.eb")
    common.easyconfig.write_text("exts_list = [('toolz', '1.2.0')]\n")
    lab.easyconfig.write_text("dependencies = [('common', '1')]\n")
    assert needs_build(common, prefix) == "not installed"
    installed(prefix, common, "exts_list = [('toolz', '1.1.0')]\n")
    installed(prefix, lab, lab.easyconfig.read_text())
    assert needs_build(common, prefix) == "its easyconfig changed"
    # lab loads common by name and version at run time: nothing to redo
    assert needs_build(lab, prefix) is None


def test_an_install_without_its_easyconfig_is_rebuilt(tmp_path):
    module = Module("m", "1", tmp_path / "m-1.eb")
    module.easyconfig.write_text("x\n")
    module.modulefile(tmp_path).parent.mkdir(parents=True)
    module.modulefile(tmp_path).write_text("-- made by hand\n")
    assert needs_build(module, tmp_path) == "installed by something else than this easyconfig"


def test_an_install_without_the_digest_users_overlays_read_is_rebuilt(tmp_path):
    module = Module("m", "1", tmp_path / "m-1.eb")
    module.easyconfig.write_text("x\n")
    installed(tmp_path, module, "x\n")
    assert needs_build(module, tmp_path) is None
    (module.installdir(tmp_path) / "share" / "stackgen" / "easyconfig-digest").unlink()
    assert needs_build(module, tmp_path).startswith("installed by an older stackgen")


def test_an_install_whose_module_finds_the_base_elsewhere_is_rebuilt(tmp_path):
    """The module file puts stack.yaml's base.modulepath on MODULEPATH: another
    one (a stack built from another checkout), or none recorded, rebuilds it."""
    module = Module("m", "1", tmp_path / "m-1.eb")
    module.easyconfig.write_text("x\n")
    installed(tmp_path, module, "x\n")
    here = (tmp_path / "checkout" / "site_modulefiles",)
    assert needs_build(module, tmp_path, here) == "the base is found elsewhere now (base.modulepath)"
    recorded = module.installdir(tmp_path) / "share" / "stackgen" / "base-modulepath"
    recorded.write_text(f"{here[0]}\n")
    assert needs_build(module, tmp_path, here) is None
    recorded.unlink()
    assert needs_build(module, tmp_path, here).startswith("installed by an older stackgen")


def test_an_install_whose_copy_of_stackgens_user_side_differs_is_rebuilt(tmp_path):
    """The jupyterlab module carries the user side of stackgen (user commands,
    the session): a stackgen whose user side changed rebuilds it, even when
    its easyconfig (which names only stackgen's version) did not change."""
    import stackgen
    from stackgen.site.easyblocks import payload

    module = Module("m", "1", tmp_path / "m-1.eb")
    module.easyconfig.write_text("x\n")
    installed(tmp_path, module, "x\n")
    copy = module.installdir(tmp_path) / "libexec" / "stackgen" / "stackgen"
    payload.copy_user_side(str(Path(stackgen.__file__).parent), str(copy))
    assert needs_build(module, tmp_path) is None
    (copy / "session" / "keeper.py").write_text("# an older session\n")
    assert needs_build(module, tmp_path).startswith("stackgen's user side")

# The order of builds (build_modules), with the eb run replaced: which module
# starts when is pure logic; the real runs are in test_build_failures and e2e.

def stack_modules(tmp_path):
    def module(name, *depends):
        return Module(name, "1", tmp_path / f"{name}-1.eb", depends=depends)
    return [module("common"), module("dask", "common"), module("ipyparallel", "common"),
            module("jupyterlab", "dask", "ipyparallel")]


def run_order(tmp_path, todo, jobs, fail=None, events=None, start_early=True):
    """build_modules with a stand-in for each eb run that waits for the
    modules it is told to await as StackgenBundle does (their marks in the
    status folder); the events it saw: start, work (its waits over), end."""
    import threading
    import time
    from types import SimpleNamespace

    from stackgen.site import build
    from stackgen.site.easyblocks.contract import NotBuilt
    events, lock = [] if events is None else events, threading.Lock()

    def fake_build_one(eb, module, why, lmod_cmd, progress, awaits=(), status=None, niceness=0):
        with lock:
            events.append(("start", module.name))
        try:
            status.wait_for(awaits, alive=lambda: True, poll=0.005)
        except NotBuilt as err:
            with lock:
                events.append(("end", module.name))
            raise build.StackgenError(str(err)) from None
        with lock:
            events.append(("work", module.name))
        # the failing module takes longest: what else runs beside it has
        # started and ended before its failure is seen
        time.sleep(0.15 if module.name == fail else 0.05)
        with lock:
            events.append(("end", module.name))
        if module.name == fail:
            raise build.StackgenError(f"EasyBuild failed to build {module.full_name}")

    build.build_modules(SimpleNamespace(workdir=tmp_path), todo, lmod_cmd="lmod",
                        progress=lambda message: None, jobs=jobs, start_early=start_early,
                        run_one=fake_build_one)
    assert not list(tmp_path.rglob("stackgen-status-*")), "the status folder is left behind"
    return events


def test_a_module_starts_while_those_it_loads_build_and_works_after_them(
        tmp_path):
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = run_order(tmp_path, todo, jobs=4)
    at = {event: i for i, event in enumerate(events)}
    for module in stack_modules(tmp_path):
        for dep in module.depends:
            assert at[("start", dep)] < at[("start", module.name)], events
            assert at[("end", dep)] < at[("work", module.name)], events
    # every run started before the first one ended: installs overlap the chain
    assert max(at[("start", m.name)] for m in stack_modules(tmp_path)) < at[("end", "common")]


def test_without_early_starts_a_module_starts_after_those_it_loads_are_built(
        tmp_path):
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = run_order(tmp_path, todo, jobs=4, start_early=False)
    at = {event: i for i, event in enumerate(events)}
    for module in stack_modules(tmp_path):
        for dep in module.depends:
            assert at[("end", dep)] < at[("start", module.name)], events
    # dask and ipyparallel still build side by side
    assert max(at[("start", "dask")], at[("start", "ipyparallel")]) < \
        min(at[("end", "dask")], at[("end", "ipyparallel")]), events


def test_two_jobs_run_two_eb_runs_at_a_time(tmp_path):
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = run_order(tmp_path, todo, jobs=2)
    live = peak = 0
    for kind, _ in events:
        live += {"start": 1, "end": -1}.get(kind, 0)
        peak = max(peak, live)
    assert peak == 2, events


def test_one_job_builds_one_module_at_a_time_in_plan_order(tmp_path):
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = run_order(tmp_path, todo, jobs=1)
    assert [name for kind, name in events if kind == "start"] == \
        ["common", "dask", "ipyparallel", "jupyterlab"]
    assert all(events[i][1] == events[i + 2][1] for i in range(0, len(events), 3))


def test_a_module_not_to_build_is_not_waited_for(tmp_path):
    common, dask, _, _ = stack_modules(tmp_path)
    events = run_order(tmp_path, [(dask, "its easyconfig changed")], jobs=2)
    assert events == [("start", "dask"), ("work", "dask"), ("end", "dask")]


def test_after_a_failure_the_running_build_ends_and_nothing_new_starts(tmp_path):
    import pytest

    from stackgen.common.errors import StackgenError
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = []
    with pytest.raises(StackgenError, match="failed to build dask/1"):
        run_order(tmp_path, todo, jobs=2, fail="dask", events=events)
    assert ("end", "ipyparallel") in events
    assert ("work", "jupyterlab") not in events
    failed_at = events.index(("end", "dask"))
    assert not [e for e in events[failed_at:] if e[0] == "start"], events


def test_after_a_failure_no_pending_module_starts(tmp_path):
    import pytest

    from stackgen.common.errors import StackgenError
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = []
    with pytest.raises(StackgenError, match="failed to build dask/1"):
        run_order(tmp_path, todo, jobs=1, fail="dask", events=events)
    assert [name for kind, name in events if kind == "start"] == ["common", "dask"]


def test_a_run_waiting_for_a_failed_module_fails_and_the_first_failure_is_raised(
        tmp_path):
    import pytest

    from stackgen.common.errors import StackgenError
    todo = [(m, "not installed") for m in stack_modules(tmp_path)]
    events = []
    with pytest.raises(StackgenError, match="failed to build common/1"):
        run_order(tmp_path, todo, jobs=4, fail="common", events=events)
    assert {name for kind, name in events if kind == "end"} == \
        {"common", "dask", "ipyparallel", "jupyterlab"}
    assert [name for kind, name in events if kind == "work"] == ["common"]


def test_failed_and_killed_runs_left_in_the_cache_are_dropped_after_a_month_and_retired_caches_at_once(tmp_path):
    import os

    from stackgen.site.build import prune_cache
    now = 1_800_000_000
    for name, age_days in (("tmp/eb-old", 31), ("tmp/eb-recent", 2), ("tmp/not-eb", 99),
                           ("tmp/stackgen-status-old", 31), ("build/tinymod-1-4242", 31),
                           ("build/tinymod-1-4343", 2), ("lab-builds/abc", 1)):
        folder = tmp_path / name
        (folder / "x").mkdir(parents=True)
        os.utime(folder, (now - age_days * 86400, now - age_days * 86400))
    assert sorted(p.name for p in prune_cache(tmp_path, now=now)) == \
        ["eb-old", "lab-builds", "stackgen-status-old", "tinymod-1-4242"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*")) == \
        ["build/tinymod-1-4343", "tmp/eb-recent", "tmp/not-eb"]
