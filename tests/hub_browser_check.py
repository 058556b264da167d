"""Run with the module's Python: a user's visit to the hub in headless
Chromium. Log in on the hub's login page, see the spawn form with the site's
fields, ask for one node with dask, press Start, wait for the lab, open the
dask sidebar. Screenshots of the three pages (and of the form filled in) go
to OUT. Prints one JSON line: the form's fields, what the sidebar shows,
every error the pages logged.

    python hub_browser_check.py HUB_URL USER PASSWORD OUT
"""

import json
import sys

from devtools import Chromium, ScriptFailed, Timeout, open_dask_sidebar

hub, user, password, out = sys.argv[1:5]
seen = {}


def value(selector, new):
    return (f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            f"if (!e) return false; e.value = {json.dumps(new)}; return true; }})()")


def ticked(name, on):
    return (f"(() => {{ const e = document.querySelector('#spawn_form input[name={name}]'); "
            f"if (!e) return false; e.checked = {json.dumps(on)}; return true; }})()")


with Chromium() as page:
    try:
        page.navigate(f"{hub}/hub/login")
        page.until(lambda: page.evaluate("!!document.querySelector('#login_submit')"), "the login page")
        page.screenshot(f"{out}/login.png")
        assert page.evaluate(value("#username_input", user)) and page.evaluate(value("#password_input", password))
        page.click("#login_submit")
        # after login the hub offers the spawn form (no server yet)
        page.until(lambda: page.evaluate("!!document.querySelector('#spawn_form')"), "the spawn form",
                   describe=lambda: page.evaluate("location.href"))
        seen["fields"] = sorted(set(page.evaluate(
            "Array.from(document.querySelectorAll('#spawn_form [name]')).map(e => e.name)")))
        page.screenshot(f"{out}/spawn.png")
        for script in (value("#spawn_form [name=partition]", "test"), value("#spawn_form [name=nodes]", "1"),
                       ticked("ipyparallel", False), ticked("dask", True),
                       value("#spawn_form [name=dask_tasks_per_node]", "1")):
            assert page.evaluate(script), script
        page.screenshot(f"{out}/spawn-filled.png")
        page.click("#spawn_form button[type=submit]")
        # the pending page, then the lab of the job's server
        page.until(lambda: page.evaluate("!!document.querySelector('.jp-LabShell')"), "the lab after Spawn",
                   timeout=300, describe=lambda: page.evaluate("location.href + ' ' + document.title"))
        page.until(lambda: page.evaluate("!document.querySelector('#jupyterlab-splash')"),
                   "the lab's splash screen to go")
        # the scheduler starts beside the lab: the sidebar finds it when it is up
        seen.update(open_dask_sidebar(page, timeout=180))
        page.settle()
        seen["location"] = page.evaluate("location.pathname")
        page.screenshot(f"{out}/lab.png")
    except Timeout as timeout:
        seen.update(timeout=timeout.what, seen=timeout.seen)
        page.screenshot(f"{out}/timeout.png")
    except ScriptFailed as failed:
        seen.update(failed=str(failed))
    seen["errors"] = page.errors
print(json.dumps(seen))
