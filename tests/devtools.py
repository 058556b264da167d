"""Headless Chromium (Debian's chromium) driven over the DevTools protocol,
for the browser checks run with the module's Python (websocket-client is in
the stack). Every wait polls the page; none sleeps a fixed time. What the
page logs as an error (exceptions, console errors, failed loads) is kept in
`errors`.

    with Chromium() as page:
        page.navigate(url)
        page.until(lambda: page.evaluate("!!document.querySelector('form')"), "the form")
"""

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket


class Timeout(Exception):
    def __init__(self, what, seen=None):
        super().__init__(what)
        self.what, self.seen = what, seen


class ScriptFailed(Exception):
    pass


class Chromium:
    def __init__(self, width=1400, height=900):
        self.profile = tempfile.mkdtemp(prefix="stackgen-chromium-")
        # nothing in the background: the page's own requests are the only ones
        self.proc = subprocess.Popen(
            [shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.errors = []
        self.ws = None
        self._counter = 0

    def __enter__(self):
        port = self.until(self._active_port, "chromium's DevTools port")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=30))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _active_port(self):
        try:
            with open(f"{self.profile}/DevToolsActivePort") as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def until(self, check, what, timeout=120.0, describe=lambda: None):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise Timeout(what, describe())
            time.sleep(0.1)

    def send(self, method, params=None):
        self._counter += 1
        self.ws.send(json.dumps({"id": self._counter, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._counter:
                return msg.get("result", {})
            self._note(msg)

    def _note(self, msg):
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("text", "") + " "
                               + str(params["exceptionDetails"].get("exception", {})
                                     .get("description", ""))[:300])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"{params['entry'].get('text', '')} {params['entry'].get('url', '')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                        for a in params["args"])[:300])

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise ScriptFailed(f"{expression}: {str(result['exceptionDetails'])[:500]}")
        return result.get("result", {}).get("value")

    def navigate(self, url):
        self.send("Page.navigate", {"url": url})

    def click(self, selector):
        """A real mouse click in the middle of the element, if it is laid out: True if clicked."""
        return self.click_element(f"document.querySelector({json.dumps(selector)})")

    def click_element(self, element):
        """click() of the element a JS expression gives (e.g. one found by its text)."""
        at = self.evaluate(f"(() => {{ const t = {element}; "
                           "if (!t) return null; const r = t.getBoundingClientRect(); "
                           "return r.width ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()")
        if not at:
            return False
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": at[0], "y": at[1], "button": "left",
                                                   "clickCount": 1})
        return True

    def press(self, key, code, keycode):
        """A key pressed and released, e.g. press("Escape", "Escape", 27)."""
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code,
                                                 "windowsVirtualKeyCode": keycode})

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))

    def settle(self, seconds=3.0):
        """Not a readiness wait: a short look at what the page logs once it is up."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.evaluate("1")


DASK_TAB = 'li[data-id="dask-dashboard-launcher"]'


def open_dask_sidebar(page, timeout=60.0):
    """Open dask-labextension's sidebar in a lab on `page` (as a user does,
    with a click on its tab) and wait until it lists the dashboard's panels:
    the panels, whether it says it is inactive, and the dashboard's URL."""
    page.until(lambda: page.evaluate(f"!!document.querySelector('{DASK_TAB}')"), "the dask tab")
    opened = "!document.querySelector('#dask-dashboard-launcher').classList.contains('lm-mod-hidden')"
    page.until(lambda: page.evaluate(opened) or (page.click(DASK_TAB) and page.evaluate(opened)),
               "the dask sidebar to open")
    panels = ("Array.from(document.querySelectorAll('#dask-dashboard-launcher .dask-DashboardListing-item'))"
              ".filter(b => !b.disabled).map(b => b.textContent)")
    sidebar = ("(() => { const s = document.querySelector('#dask-dashboard-launcher'); "
               "return s ? [s.className, s.innerText, (s.querySelector('input') || {}).value] : null; })()")
    shown = page.until(lambda: page.evaluate(panels), "the dashboard's panels in the dask sidebar", timeout,
                       describe=lambda: page.evaluate(sidebar))
    return {"panels": shown,
            "inactive": page.evaluate(
                "!!document.querySelector('#dask-dashboard-launcher .dask-DashboardListing-inactive')"),
            "url": page.evaluate("(document.querySelector('#dask-dashboard-launcher input') || {}).value")}
