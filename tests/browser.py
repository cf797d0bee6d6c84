"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): no websocket, no
port, nothing but the standard library.

Why the protocol and not `--dump-dom`: with scripts disabled (the page must
read without JavaScript) `--dump-dom` prints nothing, since it reads the DOM
through script evaluation; the protocol's DOM domain works either way. It
also reports every console message, uncaught exception, log entry and
network request as it happens, so a test can assert there were none instead
of parsing Chromium's log lines.

The pipe: Chromium reads commands from fd 3 and writes replies and events
to fd 4, each message JSON ended by a NUL byte.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The Chromium binary, or None (tests skip, naming what is missing)."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name) if not os.path.isabs(name) else (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


@dataclass
class PageLoad:
    """What loading one page produced."""

    html: str
    screenshot: bytes
    console: list[str] = field(default_factory=list)  # console.* calls, uncaught exceptions, error log entries
    requests: list[str] = field(default_factory=list)  # every URL the page asked for (itself included)
    js_ready: bool = False  # the page's script set <html data-js="ready">
    evaluated: Any = None  # the value of `evaluate`, run after the load (JavaScript on only)


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.write_fd, self.read_fd = proc, write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def wait_event(self, method: str, session: str, timeout: float = 30.0) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method and e.get("sessionId") == session:
                return e
        while True:
            e = self.receive(timeout)
            self.events.append(e)
            if e.get("method") == method and e.get("sessionId") == session:
                return e


def load_page(path: str | Path, javascript: bool, width: int = 1400, height: int = 2000,
              chromium: str | None = None, evaluate: str | None = None) -> PageLoad:
    """Open `path` from disk in a fresh headless Chromium; the DOM, a PNG screenshot and what went wrong."""
    binary = chromium or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found")
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="convrewrite-chromium-")

    def wire() -> None:  # in the child: its fd 3 reads our commands, fd 4 carries its answers
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # out of the way first: either may be 3 or 4
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "about:blank"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=wire, pass_fds=(3, 4), close_fds=True)  # closing the rest runs after wire()
    os.close(to_child_r)
    os.close(from_child_w)
    pipe = _Pipe(proc, to_child_w, from_child_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network", "DOM"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setScriptExecutionDisabled", {"value": not javascript}, session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        url = Path(path).resolve().as_uri()
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait_event("Page.loadEventFired", session)
        root = pipe.send("DOM.getDocument", {"depth": -1}, session=session)["root"]
        html = pipe.send("DOM.getOuterHTML", {"nodeId": root["nodeId"]}, session=session)["outerHTML"]
        shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        pipe.send("Runtime.runIfWaitingForDebugger", session=session)  # flush: events before this reply are in
        load = PageLoad(html, base64.b64decode(shot))
        if evaluate is not None:
            result = pipe.send("Runtime.evaluate", {"expression": evaluate, "returnByValue": True}, session=session)
            load.evaluated = result.get("result", {}).get("value")
        for e in pipe.events:
            if e.get("sessionId") != session:
                continue
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled":
                load.console.append(f"console.{params.get('type')}: "
                                    + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                load.console.append(f"exception: {details.get('text')} "
                                    f"{(details.get('exception') or {}).get('description', '')}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") in ("error", "warning"):
                    load.console.append(f"log.{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")
            elif method == "Network.requestWillBeSent":
                load.requests.append(params.get("request", {}).get("url", ""))
        opening = re.search(r"<html\b[^>]*>", html)
        load.js_ready = bool(opening) and 'data-js="ready"' in opening.group(0)
        return load
    finally:
        try:
            pipe.send("Browser.close", timeout=10)
        except Exception:  # already gone: nothing to close
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_child_w)
        os.close(from_child_r)
        shutil.rmtree(profile, ignore_errors=True)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
