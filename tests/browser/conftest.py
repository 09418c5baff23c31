"""Fixtures for the browser tests: Debian's headless Chromium driven by Playwright, and a JupyterLab server.

* ``browser``: one Chromium for the session, launched from ``/usr/bin/chromium`` (``$LNEDU_CHROMIUM``
  overrides it). Playwright never downloads a browser here. Where no Chromium is installed, or it cannot
  start, every browser test is skipped with the reason (``make browser-deps`` installs it with apt);
  ``LNEDU_REQUIRE_BROWSER=1`` turns that skip into a failure, for a CI that must not skip.
* ``page``: a fresh tab in its own context (no shared storage), every wait bounded.
* ``jupyterlab``: JupyterLab on a free loopback port with a random token, serving a temporary copy of
  ``notebooks/`` (the stored notebooks are never modified), with its own settings, workspaces and runtime
  folders, and ``LNEDU_PRESET=tiny`` for the kernels. Stopped, kernels first, at the end of the session.

Screenshots go to ``tests/browser/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path(os.environ.get("LNEDU_CHROMIUM", "/usr/bin/chromium"))
# headless, and quiet on a machine without internet: no background requests that would only be refused
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 90  # JupyterLab answering /api/status
DEFAULT_WAIT_MS = 30_000  # any single wait in a page


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium (skipped where Chromium cannot run)")


def _unavailable(reason: str):
    if os.environ.get("LNEDU_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"{reason} (and LNEDU_REQUIRE_BROWSER is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package) under Playwright, shared by every browser test."""
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM}: install it with `make browser-deps` (apt-get, as root)")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `make install` (it is in the [test] extra)", pytrace=False)
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                      timeout=60_000)
    except Error as exc:
        pw.stop()
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "no message")
        _unavailable(f"Chromium at {CHROMIUM} cannot start here: {first}")
    try:
        yield chromium
    finally:
        chromium.close()
        pw.stop()


@pytest.fixture
def page(browser):
    """A new tab in its own browser context (no shared storage between tests), 1400 x 1000 pixels."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(DEFAULT_WAIT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder for screenshots and other things a reader of a CI run may want to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: its base ``url``, ``token``, and ``root`` (the temporary copy of notebooks/)."""

    url: str
    token: str
    root: Path
    log: Path

    def page_url(self, notebook: str) -> str:
        """The address that opens ``notebook`` alone (``reset``: nothing restored from an earlier page)."""
        return f"{self.url}lab/tree/{notebook}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 10.0):
        req = urllib.request.Request(f"{self.url}api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _write_settings(folder: Path) -> None:
    """Lab settings for a test: every cell in the DOM (no virtual scrolling), no news or update checks."""
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false", "checkForUpdates": False},
    }
    for rel, value in settings.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")


def _jupyter() -> list[str]:
    script = Path(sys.executable).with_name("jupyter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyter"]


@pytest.fixture(scope="session")
def jupyterlab(browser, tmp_path_factory):
    """JupyterLab serving a temporary copy of notebooks/ on 127.0.0.1 (started after Chromium is known to run)."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _write_settings(base / "settings")
    env = {
        **os.environ,
        "LNEDU_PRESET": "tiny",
        "LNEDU_RUNS": str(base / "runs"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
    }
    port, token = free_loopback_port(), secrets.token_hex(24)
    cmd = _jupyter() + [
        "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI runs as root; JupyterLab refuses that unless told
        cmd.append("--allow-root")
    lab = Lab(f"http://127.0.0.1:{port}/", token, root, base / "jupyterlab.log")
    with open(lab.log, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=root)
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited with status {proc.returncode}:\n{lab.log_tail()}", pytrace=False)
                try:
                    lab.api("status", timeout=2)
                    break
                except OSError:  # not listening yet (URLError, ConnectionError and TimeoutError are OSErrors)
                    if time.monotonic() > deadline:
                        pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{lab.log_tail()}",
                                    pytrace=False)
                    time.sleep(0.25)
            yield lab
        finally:
            _stop(lab, proc)


def _stop(lab: Lab, proc: subprocess.Popen) -> None:
    """Shut the kernels down and then the server through its API; terminate, then kill, what is left."""
    if proc.poll() is None:
        try:
            for kernel in lab.api("kernels"):
                lab.api(f"kernels/{kernel['id']}", method="DELETE")
            lab.api("shutdown", method="POST")
        except OSError:  # the server is already going: the waits below see to it
            pass
    for stop in (proc.terminate, proc.kill):
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            stop()
    proc.wait(timeout=15)
