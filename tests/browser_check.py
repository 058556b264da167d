"""Run with the module's Python (websocket-client is in the stack): open a
JupyterLab in headless Chromium over the DevTools protocol (devtools.py),
open the dask sidebar, then the Help menu, and print one JSON line: what the
sidebar shows, the Help menu's entries of the jupyterlab-tour source
extension (its launch command) and every error the page logged. Every wait
polls the page; none sleeps a fixed time.

    python browser_check.py URL TOKEN
"""

import json
import sys

from devtools import Chromium, ScriptFailed, Timeout, open_dask_sidebar

url, token = sys.argv[1], sys.argv[2]

with Chromium() as page:
    try:
        page.navigate(f"{url}/lab?token={token}")
        page.until(lambda: page.evaluate("!!document.querySelector('.jp-LabShell')"), "the lab")
        # the splash screen covers the page until the lab is restored
        page.until(lambda: page.evaluate("!document.querySelector('#jupyterlab-splash')"),
                   "the lab's splash screen to go")
        sidebar = open_dask_sidebar(page)
        # the Help menu, opened as a user does: the source extension's tours are its entries
        help_menu = ("Array.from(document.querySelectorAll('.lm-MenuBar-item'))"
                     ".find(i => i.textContent.trim() === 'Help')")
        tours = ("Array.from(document.querySelectorAll("
                 "'.lm-Menu .lm-Menu-item[data-command=\"jupyterlab-tour:launch\"]'))"
                 ".map(i => i.querySelector('.lm-Menu-itemLabel').textContent)")

        def open_help():
            found = page.evaluate(f"(() => {{ const t = {tours}; return t.length ? t : null; }})()")
            if not found:
                page.click_element(help_menu)
            return found
        menu_labels = "Array.from(document.querySelectorAll('.lm-Menu .lm-Menu-itemLabel')).map(i => i.textContent)"
        help_tours = page.until(open_help, "the tours in the Help menu", 60,
                                describe=lambda: page.evaluate(menu_labels))
        page.press("Escape", "Escape", 27)       # the menu closed again
        page.settle()
        print(json.dumps({**sidebar, "help_tours": help_tours, "errors": page.errors}))
    except Timeout as timeout:
        raise SystemExit(json.dumps({"timeout": timeout.what, "errors": page.errors, "seen": timeout.seen}))
    except ScriptFailed as failed:
        raise SystemExit(json.dumps({"failed": str(failed), "errors": page.errors}))
