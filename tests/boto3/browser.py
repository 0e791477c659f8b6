"""Real headless Chromium for the console's tests, driven through WebDriver (chromedriver's
W3C protocol, spoken here with urllib: no client library). Debian's `chromium` and
`chromium-driver` are installed with apt-get when missing (the command is printed)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness import free_port

PACKAGES = ["chromium", "chromium-driver"]


def ensure_chromium():
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    print(f"browser: installing {' '.join(PACKAGES)} from Debian: {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        # The package lists may be missing on a fresh machine.
        update = ["apt-get", "update"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get", "update"]
        subprocess.run(update, capture_output=True, text=True)
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not shutil.which("chromedriver"):
        raise RuntimeError(f"could not install {PACKAGES} with apt-get:\n{done.stdout}\n{done.stderr}")


class WebDriverError(Exception):
    pass


class Browser:
    """One headless Chromium session."""

    def __init__(self, width=1280, height=1400):
        ensure_chromium()
        self.port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                self._request("GET", "/status")
                break
            except Exception:
                if time.time() > deadline:
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": shutil.which("chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         f"--window-size={width},{height}"],
            },
        }}}
        self.session = self._request("POST", "/session", caps)["sessionId"]

    def _request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read()).get("value", {})
            raise WebDriverError(f"{value.get('error')}: {value.get('message', '')[:500]}") from None

    def _session(self, method, path, body=None):
        return self._request(method, f"/session/{self.session}{path}", body)

    def close(self):
        try:
            self._request("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=10)

    def get(self, url):
        self._session("POST", "/url", {"url": url})

    def script(self, source, *args):
        return self._session("POST", "/execute/sync", {"script": source, "args": list(args)})

    def find_all(self, css):
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        for e in found:
            self.element_key = next(iter(e.keys()))  # W3C's web element identifier
        return [next(iter(e.values())) for e in found]

    def find(self, css, timeout=30):
        """The first element matching `css`, waiting for it to appear."""
        return self.wait(lambda: (self.find_all(css) or [None])[0], timeout, f"an element matching {css!r}")

    def wait(self, condition, timeout=30, what="the condition"):
        deadline = time.time() + timeout
        while True:
            try:
                value = condition()
            except WebDriverError:
                value = None
            if value:
                return value
            if time.time() > deadline:
                try:
                    page = self.body_text()
                except WebDriverError as e:
                    page = f"(unreadable: {e})"
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; the page reads:\n{page[:3000]}")
            time.sleep(0.2)

    def click(self, element):
        self._session("POST", f"/element/{element}/click", {})

    def type(self, element, text):
        self._session("POST", f"/element/{element}/clear", {})
        self._session("POST", f"/element/{element}/value", {"text": text})

    def text(self, element):
        return self._session("GET", f"/element/{element}/text")

    def choose(self, element, value):
        """Picks a <select>'s option by value, as a user's choice would (a change event)."""
        self.script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'));",
                    {self.element_key: element}, value)

    def field(self, label):
        """The control a <label> with this exact text labels."""
        target = self.wait(lambda: self.script(
            "const l = [...document.querySelectorAll('label')].find(l => l.textContent.trim() === arguments[0]);"
            "return l ? l.htmlFor : null;", label), 30, f"a field labelled {label!r}")
        return self.find(f"[id='{target}']")

    def button(self, text):
        """A button with this exact text, waiting until one is there and enabled."""
        def enabled():
            for b in self.find_all("button"):
                if self.text(b).strip() == text and self._session("GET", f"/element/{b}/enabled"):
                    return b
            return None
        return self.wait(enabled, 60, f"an enabled button {text!r}")

    def body_text(self):
        return self.script("return document.body.innerText;")

    def screenshot(self, path):
        png = base64.b64decode(self._session("GET", "/screenshot"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)
