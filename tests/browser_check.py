"""Run with the module's Python (websocket-client is in the stack): open a
JupyterLab in headless Chromium over the DevTools protocol (devtools.py),
open the dask sidebar, and print one JSON line: what the sidebar shows and
every error the page logged. Every wait polls the page; none sleeps a fixed
time.

    python browser_check.py URL TOKEN
"""

import json
import sys

from devtools import Chromium, ScriptFailed, Timeout

url, token = sys.argv[1], sys.argv[2]

with Chromium() as page:
    try:
        page.navigate(f"{url}/lab?token={token}")
        tab = 'li[data-id="dask-dashboard-launcher"]'
        page.until(lambda: page.evaluate(f"!!(document.querySelector('.jp-LabShell') && "
                                         f"document.querySelector('{tab}'))"), "the lab and its dask tab")
        # the splash screen covers the page until the lab is restored
        page.until(lambda: page.evaluate("!document.querySelector('#jupyterlab-splash')"),
                   "the lab's splash screen to go")
        opened = "!document.querySelector('#dask-dashboard-launcher').classList.contains('lm-mod-hidden')"
        page.until(lambda: page.evaluate(opened) or (page.click(tab) and page.evaluate(opened)),
                   "the dask sidebar to open")
        panels = ("Array.from(document.querySelectorAll('#dask-dashboard-launcher .dask-DashboardListing-item'))"
                  ".filter(b => !b.disabled).map(b => b.textContent)")
        sidebar = ("(() => { const s = document.querySelector('#dask-dashboard-launcher'); "
                   "return s ? [s.className, s.innerText, (s.querySelector('input') || {}).value] : null; })()")
        shown = page.until(lambda: page.evaluate(panels), "the dashboard's panels in the dask sidebar", 60,
                           describe=lambda: page.evaluate(sidebar))
        page.settle()
        print(json.dumps({
            "panels": shown,
            "inactive": page.evaluate(
                "!!document.querySelector('#dask-dashboard-launcher .dask-DashboardListing-inactive')"),
            "url": page.evaluate("(document.querySelector('#dask-dashboard-launcher input') || {}).value"),
            "errors": page.errors}))
    except Timeout as timeout:
        raise SystemExit(json.dumps({"timeout": timeout.what, "errors": page.errors, "seen": timeout.seen}))
    except ScriptFailed as failed:
        raise SystemExit(json.dumps({"failed": str(failed), "errors": page.errors}))
