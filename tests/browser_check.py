"""Run with the module's Python (websocket-client is in the stack): open a
JupyterLab in headless Chromium over the DevTools protocol, open the dask
sidebar, then the Help menu, and print one JSON line: what the sidebar
shows, the Help menu's entries of the jupyterlab-tour source extension
(its launch command) and every error the page logged. Every wait polls the
page; none sleeps a fixed time.

    python browser_check.py URL TOKEN
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

url, token = sys.argv[1], sys.argv[2]
profile = tempfile.mkdtemp(prefix="stackgen-chromium-")
chromium = subprocess.Popen(
    [shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
     "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
     "--remote-allow-origins=*", f"--user-data-dir={profile}", "--window-size=1400,900", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def until(check, what, timeout=120.0, describe=lambda: None):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(json.dumps({"timeout": what, "errors": errors, "seen": describe()}))
        time.sleep(0.1)


def active_port():
    try:
        with open(f"{profile}/DevToolsActivePort") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


errors = []
try:
    port = until(active_port, "chromium's DevTools port")
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=30))
    page = next(t for t in targets if t["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
    counter = [0]

    def send(method, params=None):
        counter[0] += 1
        ws.send(json.dumps({"id": counter[0], "method": method, "params": params or {}}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == counter[0]:
                return msg.get("result", {})
            note(msg)

    def note(msg):
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "") + " "
                          + str(params["exceptionDetails"].get("exception", {}).get("description", ""))[:300])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"{params['entry'].get('text', '')} {params['entry'].get('url', '')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])[:300])

    def evaluate(expression):
        result = send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise SystemExit(json.dumps({"script": expression, "failed": str(result["exceptionDetails"])[:500],
                                         "errors": errors}))
        return result.get("result", {}).get("value")

    for domain in ("Runtime", "Log", "Page"):
        send(f"{domain}.enable")
    send("Page.navigate", {"url": f"{url}/lab?token={token}"})
    tab = 'document.querySelector(\'li[data-id="dask-dashboard-launcher"]\')'
    until(lambda: evaluate(f"!!(document.querySelector('.jp-LabShell') && {tab})"), "the lab and its dask tab")
    # the splash screen covers the page until the lab is restored
    until(lambda: evaluate("!document.querySelector('#jupyterlab-splash')"), "the lab's splash screen to go")
    opened = "!document.querySelector('#dask-dashboard-launcher').classList.contains('lm-mod-hidden')"

    def click(element):
        """A real mouse click at the middle of `element` (a JS expression),
        when it is on the page and laid out."""
        at = evaluate(f"(() => {{ const t = {element}; if (!t) return null; "
                      "const r = t.getBoundingClientRect(); "
                      "return r.width ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()")
        if at:
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                send("Input.dispatchMouseEvent", {"type": kind, "x": at[0], "y": at[1], "button": "left",
                                                  "clickCount": 1})

    def click_tab():
        if evaluate(opened):
            return True
        click(tab)
        return evaluate(opened)
    until(click_tab, "the dask sidebar to open")
    panels = ("Array.from(document.querySelectorAll('#dask-dashboard-launcher .dask-DashboardListing-item'))"
              ".filter(b => !b.disabled).map(b => b.textContent)")
    sidebar = ("(() => { const s = document.querySelector('#dask-dashboard-launcher'); "
               "return s ? [s.className, s.innerText, (s.querySelector('input') || {}).value] : null; })()")
    shown = until(lambda: evaluate(panels), "the dashboard's panels in the dask sidebar", 60,
                  describe=lambda: evaluate(sidebar))
    # the Help menu, opened as a user does: the source extension's tours are its entries
    help_menu = ("Array.from(document.querySelectorAll('.lm-MenuBar-item'))"
                 ".find(i => i.textContent.trim() === 'Help')")
    tours = ("Array.from(document.querySelectorAll("
             "'.lm-Menu .lm-Menu-item[data-command=\"jupyterlab-tour:launch\"]'))"
             ".map(i => i.querySelector('.lm-Menu-itemLabel').textContent)")

    def open_help():
        found = evaluate(f"(() => {{ const t = {tours}; return t.length ? t : null; }})()")
        if not found:
            click(help_menu)
        return found
    help_tours = until(open_help, "the tours in the Help menu", 60,
                       describe=lambda: evaluate("Array.from(document.querySelectorAll("
                                                 "'.lm-Menu .lm-Menu-itemLabel')).map(i => i.textContent)"))
    for kind in ("keyDown", "keyUp"):       # the menu closed again
        send("Input.dispatchKeyEvent", {"type": kind, "key": "Escape", "code": "Escape",
                                        "windowsVirtualKeyCode": 27})
    # not a readiness wait: a short look at what the page logs once the panels are up
    settle = time.monotonic() + 3
    while time.monotonic() < settle:
        evaluate("1")
    print(json.dumps({
        "panels": shown,
        "inactive": evaluate("!!document.querySelector('#dask-dashboard-launcher .dask-DashboardListing-inactive')"),
        "url": evaluate("(document.querySelector('#dask-dashboard-launcher input') || {}).value"),
        "help_tours": help_tours,
        "errors": errors}))
finally:
    chromium.terminate()
    chromium.wait(timeout=30)
    shutil.rmtree(profile, ignore_errors=True)
