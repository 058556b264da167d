"""A user's visit to the hub without a browser: pages with their cookies and
the _xsrf token, the spawn form's fields, the message of a refused form."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class WebClient:
    """Pages of the hub as a browser gets them: cookies kept, the _xsrf token
    sent with every form; redirects followed unless asked not to."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        cookies = urllib.request.HTTPCookieProcessor(self.jar)
        self.opener = urllib.request.build_opener(cookies)
        self.stay = urllib.request.build_opener(cookies, NoRedirect)
        self.xsrf = ""

    def request(self, method: str, path: str, form: dict | None = None, follow: bool = True,
                headers: dict | None = None) -> tuple[int, str, str]:
        """(status, final URL or Location, body)"""
        data = None
        headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode({**form, "_xsrf": self.xsrf}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if method != "GET" and self.xsrf:
            headers["X-XSRFToken"] = self.xsrf
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with (self.opener if follow else self.stay).open(request, timeout=120) as response:
                body = response.read().decode(errors="replace")
                status, where = response.status, response.url
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            status, where = error.code, error.headers.get("Location", "")
        self._note_xsrf(body)
        return status, where, body

    def _note_xsrf(self, body: str) -> None:
        match = (re.search(r'name="_xsrf" value="([^"]+)"', body)
                 or re.search(r'xsrf_token: "([^"]+)"', body))
        if match:
            self.xsrf = match.group(1)

    def login(self, user) -> tuple[int, str, str]:
        status, _, page = self.request("GET", "/hub/login")
        assert status == 200 and 'name="_xsrf"' in page, (status, page[-2000:])
        return self.request("POST", "/hub/login", form={"username": user.name, "password": user.password},
                            follow=False)


def spawn_error(page: str) -> str:
    """The message the spawn page shows after a refused form, or ''."""
    match = re.search(r'<p class="spawn-error-msg[^"]*">(.*?)</p>', page, re.S)
    return re.sub(r"\s+", " ", match.group(1)).strip() if match else ""


class FormReader(HTMLParser):
    """The spawn form's fields and what a browser would send unchanged: text and
    number inputs their value, a checked checkbox its value, a select its
    selected (or first) option."""

    def __init__(self):
        super().__init__()
        self.inside, self.fields, self.defaults, self.options = False, set(), {}, {}
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "spawn_form":
            self.inside = True
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name:
            self.fields.add(name)
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.defaults[name] = a.get("value", "on")
            elif kind not in ("submit", "button"):
                self.defaults[name] = a.get("value") or ""
        elif tag in ("select", "textarea") and name:
            self.fields.add(name)
            self._select = name if tag == "select" else None
            self.options.setdefault(name, [])
        elif tag == "option" and self._select:
            value = a.get("value", "")
            self.options[self._select].append(value)
            if "selected" in a or self._select not in self.defaults:
                self.defaults[self._select] = value

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form":
            self.inside = False


def read_form(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    assert reader.fields, page[-3000:]
    return reader
