"""A real headless browser for tests: Debian's Chromium driven by Selenium, the network shut off.

Used by the docs-site test (``tests/test_docs_site.py``) and meant for every web test
(Phase 9's chat page too). The pieces:

- ``serve_directory(path)``: a static HTTP server on 127.0.0.1 on a free port, in a
  thread, stopped on exit (``with serve_directory(site) as url: ...``). A test of a
  server of its own (Phase 9) starts that server on 127.0.0.1 instead.
- ``BlockingProxy``: Chromium sends every request that is not for the loopback interface
  to this proxy, which records it and refuses it: the browser works exactly as it would
  offline, whatever the machine can reach.
- ``Browser``: Chromium with the flags a closed network needs, a fresh profile, the proxy
  above, and helpers: ``open``, ``wait_for`` (poll a JavaScript expression), ``js``,
  ``text``, ``outside`` (what the page asked of other hosts), ``failed_requests``,
  ``console_errors``, ``screenshot``; ``shadow_svg_sizes`` looks into closed shadow roots.
- Fixtures: ``browser_session`` (one Chromium per test session) and ``browser`` (that
  browser on a blank page with its request log cleared, and a screenshot of the page,
  path printed, when the test fails). Import them where they are needed::

      from tests.browser import browser, browser_session  # noqa: F401  (fixtures)

      def test_chat_page(browser, chat_server_url):
          browser.open(chat_server_url)
          browser.wait_for("return document.querySelector('#reply')?.innerText", timeout=30)
          assert browser.outside == [] and browser.console_errors() == []

Chromium is ``/usr/bin/chromium`` with ``/usr/bin/chromedriver`` (Debian packages
``chromium`` and ``chromium-driver``, which ``.ci/run`` installs; ADR 0003), or the paths
in ``CHROMIUM`` / ``CHROMEDRIVER``. ``find_chromium()`` says why a browser is unusable;
the fixtures skip on that locally and fail under ``CI=true``. Selenium is given both
paths, so its driver manager never goes online. ``BROWSER_SCREENSHOTS=DIR`` keeps the
failure screenshots in DIR (default: pytest's temporary folder).

Left out: other browsers, a visible window, downloads.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Flags for a closed network: without the background-networking ones Chromium's own
# connections (updates, sync, field trials) are refused and slow every start down.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # quieter still (Chromium keeps calling its own services; the proxy refuses them)
                  "--disable-client-side-phishing-detection", "--disable-domain-reliability",
                  "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                  "--disable-breakpad", "--metrics-recording-only", "--password-store=basic",
                  "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
                  "--no-default-browser-check", "--mute-audio", "--hide-scrollbars")


# --------------------------------------------------------------------------- finding Chromium

def chromium_paths() -> tuple[str, str]:
    return (os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium",
            os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver")


@functools.lru_cache(maxsize=1)
def find_chromium() -> str | None:
    """None when a browser test can run; otherwise why not (what to install)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[browser]')"
    binary, driver = chromium_paths()
    missing = [p for p in (binary, driver) if not Path(p).is_file()]
    if missing:
        return f"{' and '.join(missing)} not found (Debian: apt-get install chromium chromium-driver)"
    try:
        out = subprocess.run([driver, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{driver} does not run: {e}"
    if out.returncode != 0:
        return f"{driver} --version failed: {out.stderr.strip()[:200]}"
    return None


# --------------------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):   # keep test output clean
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def serve_directory(root: str | os.PathLike):
    """Serve ``root`` on ``http://127.0.0.1:PORT/`` for the duration of the ``with`` block."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class BlockingProxy:
    """An HTTP proxy on 127.0.0.1 that records every request it gets and refuses it (403).

    The browser sends everything except loopback through it, so nothing leaves the machine
    and ``outside`` lists what a page tried to fetch from other hosts."""

    def __init__(self):
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="blocking-proxy", daemon=True)
        self._thread.start()

    def _serve(self):
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket):
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            line = data.split(b"\r\n", 1)[0].decode("latin-1").strip()
            if line:
                method, _, rest = line.partition(" ")
                target = rest.rsplit(" ", 1)[0]
                # CONNECT host:443 (https, wss) or GET http://host/path (plain http)
                url = f"https://{target}" if method == "CONNECT" else target
                with self._lock:
                    self.requests.append(url)
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    @property
    def outside(self) -> list[str]:
        with self._lock:
            return list(self.requests)

    def clear(self):
        with self._lock:
            self.requests.clear()

    def close(self):
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "devtools", "chrome-extension"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS or (parts.hostname or "").startswith("127.")


# --------------------------------------------------------------------------- the browser

class Browser:
    """One headless Chromium. ``outside`` lists every request to another host since ``open``."""

    def __init__(self, screenshot_dir: str | os.PathLike, width: int = 1280, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        reason = find_chromium()
        if reason:
            raise RuntimeError(reason)
        binary, driver = chromium_paths()
        self.screenshot_dir = Path(screenshot_dir)
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        self.proxy = BlockingProxy()
        self._events: list[dict] = []
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={width},{height}")
        # Everything but loopback goes to the recording proxy; names never resolve.
        options.add_argument(f"--proxy-server=http://127.0.0.1:{self.proxy.port}")
        options.add_argument("--proxy-bypass-list=<-loopback>;127.0.0.1;localhost;[::1]")
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=driver, log_output=subprocess.DEVNULL)
        try:
            self.driver = webdriver.Chrome(options=options, service=service)
        except Exception:
            self.proxy.close()
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(60)
        self.driver.get("about:blank")   # leave the new-tab page, which calls Google's services

    # -- pages
    def open(self, url: str) -> None:
        """Load ``url`` (waiting for the load event), after forgetting earlier requests."""
        self.clear_requests()
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def js_async(self, script: str, *args):
        """Run ``script``; it calls ``arguments[arguments.length - 1](result)`` when done."""
        return self.driver.execute_async_script(script, *args)

    def wait_for(self, script: str, timeout: float = 30, what: str | None = None):
        """Poll the JavaScript expression ``script`` (``return ...``) until it is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or script}")
            time.sleep(0.1)

    def text(self, css: str = "body") -> str:
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)

    # -- network
    def _drain(self) -> None:
        """Move Chromium's performance log (the page's network events) into ``self._events``."""
        import json
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method", "").startswith("Network."):
                self._events.append(message)

    def requests(self) -> list[str]:
        """Every URL the page (its frames included) requested since ``open``, in order."""
        self._drain()
        out = [m["params"]["request"]["url"] for m in self._events if m["method"] == "Network.requestWillBeSent"]
        out += [m["params"]["url"] for m in self._events if m["method"] == "Network.webSocketCreated"]
        return out

    def failed_requests(self) -> list[str]:
        """Requests of the page that failed or got an HTTP status >= 400, as 'URL (why)'."""
        self._drain()
        urls = {m["params"]["requestId"]: m["params"]["request"]["url"]
                for m in self._events if m["method"] == "Network.requestWillBeSent"}
        out = []
        for m in self._events:
            p = m["params"]
            if m["method"] == "Network.responseReceived" and p["response"]["status"] >= 400:
                out.append(f"{p['response']['url']} (HTTP {p['response']['status']})")
            elif m["method"] == "Network.loadingFailed" and not p.get("canceled"):
                out.append(f"{urls.get(p['requestId'], p['requestId'])} ({p.get('errorText', 'failed')})")
        return out

    def clear_requests(self) -> None:
        self._drain()
        self._events.clear()
        self.proxy.clear()

    @property
    def outside(self) -> list[str]:
        """What the page asked of other hosts since ``open`` (refused: nothing leaves the machine).

        Chromium's own background calls (its sign-in, optimisation and time services, which no
        flag fully silences) also reach the proxy; they are not the page's and are in
        ``self.proxy.outside`` only."""
        return sorted({u for u in self.requests() if not is_local(u)})

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    # -- evidence
    def screenshot(self, name: str, full_page: bool = False) -> Path:
        """Save a PNG of the window (or of the whole page) under ``screenshot_dir``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] or "page"
        path = self.screenshot_dir / f"{safe}.png"
        if full_page:
            height = int(self.js("return Math.min(document.documentElement.scrollHeight, 30000)"))
            width = int(self.js("return window.innerWidth"))
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            try:
                self.driver.save_screenshot(str(path))
            finally:
                self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        else:
            self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        self.proxy.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- closed shadow roots

def shadow_svg_sizes(browser: Browser, host_class: str) -> list[int]:
    """For each element of class ``host_class``, the number of element nodes inside the ``<svg>``
    in its shadow root (0: none). Works for closed shadow roots too (mkdocs-material draws
    mermaid diagrams into one), through the DevTools DOM with ``pierce``."""
    tree = browser.driver.execute_cdp_cmd("DOM.getDocument", {"depth": -1, "pierce": True})["root"]

    def walk(node):
        yield node
        for key in ("children", "shadowRoots", "contentDocument"):
            value = node.get(key)
            for child in (value if isinstance(value, list) else [value] if value else []):
                yield from walk(child)

    def count(node) -> int:
        return sum(1 for n in walk(node) if n.get("nodeType") == 1) - 1

    out = []
    for node in walk(tree):
        attrs = node.get("attributes") or []
        classes = dict(zip(attrs[::2], attrs[1::2])).get("class", "").split()
        if node.get("nodeType") == 1 and host_class in classes and node.get("shadowRoots"):
            svgs = [n for root in node["shadowRoots"] for n in walk(root) if n.get("localName") == "svg"]
            out.append(max((count(s) for s in svgs), default=0))
    return out


# --------------------------------------------------------------------------- pytest fixtures
# A test module or a conftest.py makes them available by importing them (the docs test does;
# the root conftest.py can, for every test):
#     from tests.browser import browser, browser_session  # noqa: F401  (fixtures)

import pytest  # noqa: E402  (only the fixtures need pytest)


def require_chromium() -> None:
    """Skip when no browser can run, or fail under CI=true, where a skip would hide a missing install."""
    reason = find_chromium()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and no headless browser: {reason}; .ci/run installs it", pytrace=False)
    pytest.skip(f"no headless browser: {reason}")


@pytest.fixture(scope="session")
def browser_session(tmp_path_factory):
    """One headless Chromium for the whole session (starting one takes seconds)."""
    require_chromium()
    shots = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path_factory.mktemp("browser-screenshots"))
    b = Browser(shots)
    yield b
    b.close()


@pytest.fixture
def browser(browser_session, request):
    """The session's browser on a blank page, its request log cleared; when the test fails,
    a screenshot of the page as it was is saved and its path printed with the failure."""
    b = browser_session
    b.driver.get("about:blank")
    b.clear_requests()
    failed_before = request.session.testsfailed
    yield b
    if request.session.testsfailed > failed_before:   # the call phase is reported before teardown
        with contextlib.suppress(Exception):
            path = b.screenshot(request.node.name, full_page=True)
            line = f"{request.node.nodeid}: screenshot of the page at failure: {path}"
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line, file=sys.stderr)
