"""Real headless browsers for the console's tests, driven through WebDriver's commands with no
client library: Chromium through chromedriver's W3C HTTP protocol, Firefox through Marionette
(the protocol its own WebDriver commands are served on; Debian packages no geckodriver).
Debian's `chromium` and `chromium-driver`, or `firefox-esr`, are installed with apt-get when
missing (the command is printed)."""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from debian import ensure_packages
from harness import free_port


class WebDriverError(Exception):
    pass


class Browser:
    """What the tests do with a page, on either transport's five primitives: `_command`
    (a WebDriver command by its Marionette name), and the element key both use."""

    element_key = "element-6066-11e4-a07c-4a06-4ee1-9a8e-5d4c0fc8c5c3"

    def get(self, url):
        self._command("WebDriver:Navigate", {"url": url})

    def script(self, source, *args):
        return self._command("WebDriver:ExecuteScript", {"script": source, "args": list(args)})

    def find_all(self, css):
        found = self._command("WebDriver:FindElements", {"using": "css selector", "value": css})
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
        self._command("WebDriver:ElementClick", {"id": element})

    def type(self, element, text):
        self._command("WebDriver:ElementClear", {"id": element})
        self._command("WebDriver:ElementSendKeys", {"id": element, "text": text})

    def text(self, element):
        return self._command("WebDriver:GetElementText", {"id": element})

    def enabled(self, element):
        return self._command("WebDriver:IsElementEnabled", {"id": element})

    def ref(self, element):
        """An element as a script argument."""
        return {self.element_key: element}

    def choose(self, element, value):
        """Picks a <select>'s option by value, as a user's choice would (a change event)."""
        self.script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'));",
                    self.ref(element), value)

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
                if self.text(b).strip() == text and self.enabled(b):
                    return b
            return None
        return self.wait(enabled, 60, f"an enabled button {text!r}")

    def body_text(self):
        return self.script("return document.body.innerText;")

    def screenshot(self, path):
        png = base64.b64decode(self._command("WebDriver:TakeScreenshot", {}))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)


# WebDriver's HTTP endpoints for the commands above.
ROUTES = {
    "WebDriver:Navigate": ("POST", "/url"),
    "WebDriver:ExecuteScript": ("POST", "/execute/sync"),
    "WebDriver:FindElements": ("POST", "/elements"),
    "WebDriver:ElementClick": ("POST", "/element/{id}/click"),
    "WebDriver:ElementClear": ("POST", "/element/{id}/clear"),
    "WebDriver:ElementSendKeys": ("POST", "/element/{id}/value"),
    "WebDriver:GetElementText": ("GET", "/element/{id}/text"),
    "WebDriver:IsElementEnabled": ("GET", "/element/{id}/enabled"),
    "WebDriver:TakeScreenshot": ("GET", "/screenshot"),
}


class Chromium(Browser):
    """Headless Chromium through chromedriver."""

    name = "chromium"

    def __init__(self, width=1280, height=1400):
        ensure_packages(["chromium", "chromium-driver"], ["chromium", "chromedriver"])
        self.port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                self._http("GET", "/status")
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
        self.session = self._http("POST", "/session", caps)["sessionId"]

    def _http(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read()).get("value", {})
            raise WebDriverError(f"{value.get('error')}: {value.get('message', '')[:500]}") from None

    def _command(self, name, params):
        method, path = ROUTES[name]
        path = path.format(id=params.get("id", ""))
        body = {k: v for k, v in params.items() if k != "id"}
        return self._http(method, f"/session/{self.session}{path}", body if method == "POST" else None)

    def close(self):
        try:
            self._http("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=10)


class Firefox(Browser):
    """Headless Firefox through Marionette: length-prefixed JSON over TCP,
    `[0, id, command, params]` out and `[1, id, error, result]` back."""

    name = "firefox"

    def __init__(self, width=1280, height=1400):
        ensure_packages(["firefox-esr"], ["firefox"])
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="quarry-firefox-")
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            for pref, value in {
                "marionette.port": self.port,
                "browser.shell.checkDefaultBrowser": False,
                "browser.startup.homepage_override.mstone": "ignore",
                "datareporting.policy.dataSubmissionEnabled": False,
                "toolkit.telemetry.reportingpolicy.firstRun": False,
                "app.update.disabledForTesting": True,
                "browser.aboutwelcome.enabled": False,
            }.items():
                f.write(f"user_pref({json.dumps(pref)}, {json.dumps(value)});\n")
        env = dict(os.environ, MOZ_HEADLESS="1", MOZ_HEADLESS_WIDTH=str(width), MOZ_HEADLESS_HEIGHT=str(height))
        self.process = subprocess.Popen(
            [shutil.which("firefox"), "--marionette", "--headless", "--no-remote", "--profile", self.profile],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 60
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("Firefox's Marionette server did not start")
                time.sleep(0.3)
        self.buffer = b""
        self.next_id = 0
        self._read()  # the server's greeting
        self._command("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        self._command("WebDriver:SetWindowRect", {"width": width, "height": height})

    def _read(self):
        while b":" not in self.buffer:
            self._fill()
        length, rest = self.buffer.split(b":", 1)
        length = int(length)
        self.buffer = rest
        while len(self.buffer) < length:
            self._fill()
        message, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(message)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise WebDriverError("Marionette closed the connection")
        self.buffer += data

    def _command(self, name, params):
        self.next_id += 1
        message = json.dumps([0, self.next_id, name, params]).encode()
        self.sock.sendall(str(len(message)).encode() + b":" + message)
        while True:
            kind, msg_id, error, result = self._read()
            if kind == 1 and msg_id == self.next_id:
                break
        if error:
            raise WebDriverError(f"{error.get('error')}: {error.get('message', '')[:500]}")
        # Marionette wraps single values as {"value": …}; lists come bare.
        if isinstance(result, dict) and set(result) == {"value"}:
            return result["value"]
        return result

    def close(self):
        try:
            self._command("WebDriver:DeleteSession", {})
        except Exception:
            pass
        self.sock.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
