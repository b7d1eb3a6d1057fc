"""Headless Chromium driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
commands on fd 3, replies and events on fd 4, each a JSON message ended by a NUL byte), with the
standard library only. Networking is off: every host resolves to nothing and the proxy is a closed
port, so a page that tries to load anything logs an error.

`render_page` opens a local file, waits for its load event, and returns what a test checks: the
console errors and uncaught exceptions, the page's visible text, values of JavaScript expressions
and a full-page PNG screenshot. ``python -m tests.browser PAGE.html SHOT.png [MAX_HEIGHT]`` saves a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-background-networking", "--disable-sync",
    "--disable-default-apps", "--disable-component-update", "--disable-domain-reliability",
    "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
]


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Page:
    """What the browser saw."""

    errors: list[str] = field(default_factory=list)
    text: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


class DevTools:
    """One Chromium process and its protocol pipe."""

    def __init__(self, binary: str, profile: str, timeout_s: float = 60.0):
        ours_read, theirs_write = os.pipe()   # replies: chromium writes fd 4
        theirs_read, ours_write = os.pipe()   # commands: chromium reads fd 3
        # the child's ends move above fd 9 first, so that putting them on 3 and 4 cannot
        # overwrite one with the other; bash (dash takes one-digit fds only) wires them, then
        # becomes chromium
        child = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (theirs_read, theirs_write)]
        for fd in (theirs_read, theirs_write):
            os.close(fd)
        wire = f'exec "$@" 3<&{child[0]} 4>&{child[1]} {child[0]}<&- {child[1]}>&-'
        self.log = Path(profile) / "chromium.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", wire, "chromium", binary, *FLAGS, f"--user-data-dir={profile}",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=tuple(child),
            )
        for fd in child:
            os.close(fd)
        self.reader = os.fdopen(ours_read, "rb")
        self.writer = os.fdopen(ours_write, "wb")
        self.deadline = time.monotonic() + timeout_s
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.buffer = b""

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            if time.monotonic() > self.deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = self.reader.read1(65536)
            if not chunk:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium closed the DevTools pipe; its output:\n{tail}")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.writer.write(json.dumps(message).encode() + b"\0")
        self.writer.flush()
        while True:
            reply = self._receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            event = self._receive()
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pipe in (self.reader, self.writer):
            try:
                pipe.close()
            except OSError:
                pass


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and browser log errors (blocked loads, CSP)."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(params["entry"]["text"])
    return found


def render_page(path: Path, expressions: dict[str, str] | None = None, width: int = 1280,
                max_height: int = 6000) -> Page:
    """Load ``path`` in headless Chromium; see the module docstring. The screenshot is of the
    whole page, cut at ``max_height`` pixels."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium is not installed (scripts/install_chromium.sh)")
    with tempfile.TemporaryDirectory(prefix="etl-chromium-") as profile:
        tools = DevTools(binary, profile)
        try:
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                tools.call(f"{domain}.enable", session)
            tools.call("Emulation.setDeviceMetricsOverride", session, width=width, height=900,
                       deviceScaleFactor=1, mobile=False)
            tools.call("Page.navigate", session, url=path.resolve().as_uri())
            tools.wait_for("Page.loadEventFired")
            page = Page()
            page.text = tools.call("Runtime.evaluate", session, expression="document.body.innerText",
                                   returnByValue=True)["result"]["value"]
            for name, expression in (expressions or {}).items():
                page.values[name] = tools.call("Runtime.evaluate", session, expression=expression,
                                               returnByValue=True)["result"].get("value")
            height = tools.call("Page.getLayoutMetrics", session)["cssContentSize"]["height"]
            tools.call("Emulation.setDeviceMetricsOverride", session, width=width,
                       height=int(min(height, max_height)), deviceScaleFactor=1, mobile=False)
            shot = tools.call("Page.captureScreenshot", session, format="png")
            page.screenshot = base64.b64decode(shot["data"])
            page.errors = _errors(tools.events)
            return page
        finally:
            tools.close()


if __name__ == "__main__":
    seen = render_page(Path(sys.argv[1]), max_height=int(sys.argv[3]) if len(sys.argv) > 3 else 6000)
    Path(sys.argv[2]).write_bytes(seen.screenshot)
    print("\n".join(seen.errors) or "no console errors")
