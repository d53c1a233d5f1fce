"""Helpers the tests of several areas share (plain functions and classes; the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[1]  # the checkout: where `python -m smartcity.cli` is run from
BROWSER_TIMEOUT = 15_000  # ms: what a page in chromium is given to reach a state

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end in a fresh event loop of a thread of its own.

    Once a browser test has run, Playwright's sync API leaves an event loop running in the main thread for
    the rest of the session, and `asyncio.run` there fails: a test that called it would pass or fail
    depending on the order the tests ran in."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def csrf_token(client, path: str = "/") -> str:
    """The CSRF token a signed-in (or anonymous) test client's page at `path` carries in its forms."""
    return re.search(
        r'name="csrf_token" value="([^"]+)"', client.get(path, headers={"accept": "text/html"}).text
    ).group(1)


def serve(url: str, var_dir: Path, port: int, **env: str) -> subprocess.Popen:
    """`smartcity serve` in a process of its own on `port` (the OsmAnd port closed: several may run). What it
    says goes to the file `proc.log` (a pipe nobody reads fills up and stops the server at its next warning)."""
    environ = {
        **os.environ,
        "SMARTCITY_DATABASE_URL": url,
        "SMARTCITY_SECRET_KEY": "another-process",
        "SMARTCITY_VAR_DIR": str(var_dir),
        "SMARTCITY_LOG_LEVEL": "warning",
        "SMARTCITY_OSMAND_PORT": "0",
        **env,
    }
    var_dir.mkdir(parents=True, exist_ok=True)
    log = var_dir / f"serve-{port}.log"
    with log.open("wb") as said:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartcity.cli", "serve", "--port", str(port)],
            env=environ,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=said,
        )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def run_cli(url: str, *args: str) -> str:
    """The `smartcity` command in another process against the store at `url`; its output, or a failure."""
    environ = {**os.environ, "SMARTCITY_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "smartcity.cli", *args],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def browser_signin(page, server, username: str, then: str) -> None:
    """Sign in through the real form in the browser and wait until the page `then` is shown."""
    page.goto(f"{server.url}/signin?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{then.split('?')[0]}*")


class SSEReader:
    """Reads a Server-Sent-Events stream in a thread and keeps what arrives."""

    def __init__(self, url: str, headers: dict | None = None):
        self.url, self.headers = url, headers or {}
        self.events: list[dict] = []
        self.connected = threading.Event()
        self.ended = threading.Event()  # the stream is over: the server ended it, or the test closed it
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        assert self.connected.wait(10), "the event stream did not open"
        return self

    def __exit__(self, *exc):
        self._client.close()

    def _run(self):
        current: dict = {}
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as r:
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("event: "):
                        current["event"] = line[7:]
                    elif line.startswith("data: "):
                        current["data"] = json.loads(line[6:])
                    elif line == "" and current:
                        self.events.append(current)
                        current = {}
        except (httpx.HTTPError, RuntimeError):
            pass  # the test closed the stream (or the server went away): what arrived is kept
        finally:
            self.ended.set()

    def of(self, topic: str) -> list[dict]:
        return [e["data"] for e in self.events if e.get("event") == topic]
