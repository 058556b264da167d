"""Headless Chromium (Debian's chromium) opens the lab of a session started
by the single-user launcher with dask: the dask sidebar finds the session's
dashboard by itself (its default URL, through the server's proxy) and shows
its panels, not "Dashboard not connected"; the Help menu holds the tours of
jupyterlab-tour, the stack's source extension (built at build time as a
prebuilt extension), and the page logs no error."""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

import pytest

from e2e import LabServer, login_shell, with_lab
from parallel_e2e import last_json

pytestmark = [pytest.mark.slow, pytest.mark.lmod]

CHECK = Path(__file__).resolve().parent / "browser_check.py"


def test_the_lab_shows_the_sessions_dask_dashboard_and_the_source_extensions_tours(built_stack):
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is missing: ./bootstrap env installs it")
    home = built_stack.root / "home-browser"
    home.mkdir(exist_ok=True)
    launcher = built_stack.prefix / "software" / "jupyterlab" / "2026.11" / "bin" / "stackgen-singleuser"
    server = LabServer(built_stack.prefix, home, server=(
        "env", "STACKGEN_DASK=1", "STACKGEN_DASK_THREADS_PER_TASK=1", str(launcher), "--", "jupyter", "lab"))
    try:
        server.wait()
        deadline = time.monotonic() + 180
        while True:   # the scheduler comes up beside the lab: poll its dashboard through the proxy
            try:
                if server.get("/stackgen-dask/individual-plots.json")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (home / "lab.log").read_text()[-3000:]
            time.sleep(0.2)
        ran = login_shell(with_lab(built_stack.prefix, shlex.join(
            ["python", str(CHECK), server.url, server.token])), home=home, timeout=600)
        seen = last_json(ran.stdout + "\n" + ran.stderr)
    finally:
        server.stop()
    print("the page showed:", seen)          # with -s: what the browser saw
    assert "timeout" not in seen and "failed" not in seen, seen
    assert not seen["inactive"] and "Task Stream" in seen["panels"], seen
    assert seen["url"].endswith("stackgen-dask/"), seen
    assert "Welcome Tour" in seen["help_tours"] and "Notebook Tour" in seen["help_tours"], seen
    assert seen["errors"] == [], seen
