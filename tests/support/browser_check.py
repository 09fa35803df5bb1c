"""Open HTML files in headless Chromium and report what a person would see go wrong.

Talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (JSON messages
separated by NUL bytes on file descriptors 3 and 4): no websocket client, Selenium,
chromedriver or Playwright needed, only Debian's ``chromium``. For each page it
collects console errors (``console.error``/``console.assert``), uncaught exceptions,
browser log errors (failed loads, blocked content), every network request other than
the page itself and ``data:`` URIs, and, after the load event, the rendered size of
every figure's image and the body rows of every table.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SKIP_ENV = "TOKENSIM_SKIP_BROWSER"
"""Set to 1 to skip the headless-browser checks (chromium not installed on purpose)."""
OVERFLOW_TOLERANCE_PX = 1.0
"""Sub-pixel rounding allowed before a table (or the page) counts as overflowing."""
WINDOW = (1280, 900)
"""Browser window (CSS pixels): a laptop screen, where tables must fit or scroll."""

MEASURE = """(() => {
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  // data marks of a matplotlib SVG, per axes: artists clipped to the axes (lines, bands,
  // bars, markers), not ticks, spines, texts or the legend's samples
  const marks = img => {
    const src = img.getAttribute('src') || '';
    const head = 'data:image/svg+xml;base64,';
    if (!src.startsWith(head)) return null;
    const svg = new DOMParser().parseFromString(atob(src.slice(head.length)), 'image/svg+xml');
    return [...svg.querySelectorAll('g[id^="axes_"]')].map(ax =>
      [...ax.querySelectorAll('[clip-path]')].filter(e => !e.closest('g[id^="legend_"]')).length);
  };
  return JSON.stringify({
    figures: [...document.querySelectorAll('figure')].map(f => {
      const g = f.querySelector('img, svg');
      const r = (g || f).getBoundingClientRect();
      const img = g && g.tagName === 'IMG';
      return {width: r.width, height: r.height, graphic: !!g,
              natural_width: img ? g.naturalWidth : -1, complete: img ? g.complete : true,
              marks: img ? marks(g) : null};
    }),
    tables: [...document.querySelectorAll('table')].map(
      t => t.tBodies.length ? [...t.tBodies].reduce((n, b) => n + b.rows.length, 0)
                            : t.rows.length),
    overflow: [...document.querySelectorAll('table')].map(t => {
      // how far the table sticks out of the box it sits in, unless that box scrolls
      let box = t.parentElement;
      while (box && box !== document.body && !scrolls(box)
             && getComputedStyle(box).display === 'inline') box = box.parentElement;
      if (box && scrolls(box)) {
        const outer = box.parentElement.getBoundingClientRect();
        return Math.max(0, box.getBoundingClientRect().right - outer.right);
      }
      return Math.max(0, t.getBoundingClientRect().right - box.getBoundingClientRect().right,
                      t.scrollWidth - box.clientWidth);
    }),
    scrolled: [...document.querySelectorAll('table')].map(
      t => scrolls(t.parentElement) ? Math.max(0, t.scrollWidth - t.parentElement.clientWidth) : 0),
    page_overflow: Math.max(0, document.documentElement.scrollWidth - window.innerWidth),
  });
})()"""
"""Measured after the load event: each figure's rendered size and, for SVG data URIs, the
data marks per panel; each table's body rows, how many pixels it overflows the box it
sits in without a scroll wrapper (``overflow``) and scrolls inside one (``scrolled``);
how far the page itself scrolls sideways."""


TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4);"
    " os.execv(sys.argv[3], sys.argv[3:])"
)
"""Puts the pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them, then execs."""


@dataclass
class PageReport:
    """What the browser saw on one page."""

    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    tables: list[int] = field(default_factory=list)
    overflow: list[float] = field(default_factory=list)
    scrolled: list[float] = field(default_factory=list)
    page_overflow: float = 0.0
    screenshot: Path | None = None

    def problems(self) -> list[str]:
        """Console errors, outside requests, empty or unrendered figures, panels without data
        marks, tables without rows or overflowing their box, a page that scrolls sideways."""
        out = [f"console: {e}" for e in self.errors]
        out += [f"request outside the page: {u}" for u in self.requests]
        for i, f in enumerate(self.figures):
            if not f["graphic"]:
                out.append(f"figure {i}: no image")
            elif f["width"] <= 0 or f["height"] <= 0:
                out.append(f"figure {i}: rendered {f['width']}x{f['height']}")
            elif f["natural_width"] == 0 or not f["complete"]:
                out.append(f"figure {i}: image did not decode")
            elif f.get("marks") is not None:
                marks = f["marks"]
                if not marks or sum(marks) == 0:
                    out.append(f"figure {i}: no data marks")
                else:
                    out += [
                        f"figure {i}: panel {j} has no data marks"
                        for j, n in enumerate(marks)
                        if n == 0
                    ]
        out += [f"table {i}: no rows" for i, n in enumerate(self.tables) if n == 0]
        out += [
            f"table {i}: overflows its box by {px:.0f} px without a scroll wrapper"
            for i, px in enumerate(self.overflow)
            if px > OVERFLOW_TOLERANCE_PX
        ]
        if self.page_overflow > OVERFLOW_TOLERANCE_PX:
            out.append(f"page: scrolls sideways by {self.page_overflow:.0f} px")
        return out


def chromium_or_fail() -> str:
    """Path of chromium; skip when TOKENSIM_SKIP_BROWSER=1, else fail naming what is missing."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: headless-browser check skipped")
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail(
            "chromium is not installed: the report's browser test needs Debian's chromium"
            " (`python3 dev.py test` installs it as root with apt-get; or run"
            f" `apt-get install -y chromium`), or set {SKIP_ENV}=1 to skip this check"
        )
    return exe


class _Pipe:
    """A CDP connection over a pair of pipes."""

    def __init__(self, write_fd: int, read_fd: int, timeout_s: float) -> None:
        self.w, self.r, self.timeout_s = write_fd, read_fd, timeout_s
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        mid = self.next_id
        reply = self.wait(lambda m: m.get("id") == mid)
        if "error" in reply:
            raise RuntimeError(f"CDP {method}: {reply['error']}")
        return reply.get("result", {})

    def wait(self, done: Any) -> dict[str, Any]:
        end = time.monotonic() + self.timeout_s
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if "id" not in m:
                    self.events.append(m)
                if done(m):
                    return m
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer within {self.timeout_s} s")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self.buf += chunk


def check_pages(
    paths: list[Path], timeout_s: float = 60.0, screenshots: Path | None = None
) -> list[PageReport]:
    """Load each HTML file in one headless Chromium and report what it saw, in order.

    With ``screenshots`` (a folder), also save each whole page there as
    ``NN-FOLDER-NAME.png`` (NN: its place in ``paths``).
    """
    exe = chromium_or_fail()
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # move the child's ends above 9 so that placing them on fds 3 and 4 cannot clobber them
    a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
    b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
    for fd in (to_chrome_r, from_chrome_w):
        os.close(fd)
    with tempfile.TemporaryDirectory(prefix="tokensim-chromium-") as profile:
        args = [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--mute-audio",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        err = Path(profile) / "stderr.txt"
        with err.open("wb") as err_f:
            proc = subprocess.Popen(
                [sys.executable, "-c", TRAMPOLINE, str(a), str(b), *args],
                pass_fds=(a, b),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_f,
            )
        os.close(a)
        os.close(b)
        cdp = _Pipe(to_chrome_w, from_chrome_r, timeout_s)
        try:
            return [
                _check(cdp, Path(p).resolve().as_uri(), _shot(i, p, screenshots))
                for i, p in enumerate(paths)
            ]
        except (TimeoutError, EOFError, RuntimeError) as e:
            tail = err.read_text(errors="replace")[-3000:] if err.exists() else ""
            raise AssertionError(f"headless chromium failed: {e}\n{tail}") from None
        finally:
            with contextlib.suppress(OSError):
                os.write(
                    to_chrome_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0"
                )
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_chrome_w)
            os.close(from_chrome_r)


def _shot(index: int, page: Path, folder: Path | None) -> Path | None:
    """Where the screenshot of the ``index``-th page goes (None: no screenshot)."""
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{index:02d}-{Path(page).parent.name}-{Path(page).stem}.png"


def _check(cdp: _Pipe, url: str, screenshot: Path | None = None) -> PageReport:
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
        cdp.send(f"{domain}.enable", session=s)
    start = len(cdp.events)
    cdp.send("Page.navigate", {"url": url}, session=s)
    cdp.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == s)
    measured = cdp.send(
        "Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session=s
    )
    page = PageReport(url)
    for ev in cdp.events[start:]:
        if ev.get("sessionId") != s:
            continue
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            page.errors.append(
                " ".join(str(x.get("value", x.get("description"))) for x in p.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            page.errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            page.errors.append(f"{e.get('text')} ({e.get('url', '')})")
        elif method == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if u != url and not u.startswith("data:"):
                page.requests.append(u)
    data = json.loads(measured["result"]["value"])
    page.figures, page.tables = data["figures"], data["tables"]
    page.overflow, page.scrolled = data["overflow"], data["scrolled"]
    page.page_overflow = data["page_overflow"]
    if screenshot is not None:
        shot = cdp.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=s,
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        page.screenshot = screenshot
    cdp.send("Target.closeTarget", {"targetId": target})
    return page
