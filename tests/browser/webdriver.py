"""A small W3C WebDriver client for chromedriver: just what the dashboard tests use.

Debian's `chromium` and `chromium-driver` packages provide the browser and the
driver; the tests talk to the driver over its HTTP protocol with the standard
library, so no browser automation package is needed.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,900",
)
_ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
T = TypeVar("T")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(path) is None:
            return f"{path} not found: install Debian's {package} package (apt-get install -y chromium chromium-driver)"
    return None


class WebDriverError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Driver:
    """chromedriver running as a child process."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/status")["value"]["ready"]:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise WebDriverError("chromedriver did not become ready")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise WebDriverError(f"{method} {path}: {exc.code} {detail[:500]}") from None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# The dashboard redraws live; an element found a moment ago may have been replaced.
_STALE_RETRIES = 5


class Browser:
    """One headless Chromium session with a fresh profile."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._profile = tempfile.mkdtemp(prefix="ojs-chromium-")
        options = {"binary": CHROMIUM, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}"]}
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        reply = driver.call("POST", "/session", {"capabilities": capabilities})
        self._session = reply["value"]["sessionId"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._driver.call(method, f"/session/{self._session}{path}", body)["value"]

    def quit(self) -> None:
        try:
            self._call("DELETE", "")
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        """Run `script` (a function body; `arguments` holds args) in the page and return its value."""
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return str(self._call("POST", "/element", {"using": "css selector", "value": css})[_ELEMENT])

    def _on_element(self, css: str, method: str, action: str, body: Any = None) -> Any:
        """Find `css` and act on it; found again when a live redraw replaced it in between."""
        for attempt in range(_STALE_RETRIES):
            try:
                return self._call(method, f"/element/{self.find(css)}/{action}", body)
            except WebDriverError as exc:
                if "stale element" not in str(exc) or attempt == _STALE_RETRIES - 1:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    def click(self, css: str) -> None:
        self._on_element(css, "POST", "click", {})

    def type(self, css: str, text: str) -> None:
        self._on_element(css, "POST", "value", {"text": text})

    def text(self, css: str) -> str:
        return str(self._on_element(css, "GET", "text"))

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def wait(self, condition: Callable[[], T], *, timeout: float = 15.0, what: str = "condition") -> T:
        """The first truthy value of `condition`, polled until `timeout`."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except WebDriverError as exc:
                last_error = exc
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")

    def wait_js(self, script: str, *args: Any, timeout: float = 15.0) -> Any:
        return self.wait(lambda: self.js(script, *args), timeout=timeout, what=script)
