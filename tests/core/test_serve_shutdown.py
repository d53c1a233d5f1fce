"""Stopping `smartcity serve` while a live event stream is open: the stream ends at once, cleanly, audited.

The defect: uvicorn waits for open responses before the app's shutdown runs, and an event stream never ends by
itself, so every stop with an operator's console open waited out the whole graceful timeout, then cancelled the
stream ("Cancel 1 running task(s), timeout graceful shutdown exceeded", "Exception in ASGI application")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from smartcity.cli import GRACEFUL_SHUTDOWN_S
from smartcity.core import audit
from smartcity.core.db import Database
from smartcity.core.events import publish
from tests.conftest import eventually, make_key, make_user
from tests.helpers import ROOT, serve
from tests.servers import free_port, wait_for_port

SOMEONE = 987_654  # a person the administrator's stream is not scoped to: each of their positions is refused


class RawStream:
    """An SSE stream read line by line in a thread: what arrived, and when the server ended it."""

    def __init__(self, url: str, headers: dict):
        self.url, self.headers = url, headers
        self.lines: list[str] = []
        self.ended_at: float | None = None
        self.ended = threading.Event()
        self.status: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client,
                client.stream("GET", self.url, headers=self.headers) as r,
            ):
                self.status = r.status_code
                for line in r.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError as exc:
            self.lines.append(f"!! {exc!r}")
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()

    def saw(self, text: str) -> bool:
        return any(line.startswith(text) for line in self.lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_stopping_the_server_ends_open_event_streams_at_once(db, db_url, tmp_path, sig):
    make_user(db, "admin1", "admin")
    key = make_key(db, "admin1")
    port, osmand_port = free_port(), free_port()
    # The OsmAnd port's own server runs too: it must not hold the stop up either.
    proc = serve(db_url, tmp_path / "var", port, SMARTCITY_OSMAND_PORT=str(osmand_port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc=proc)
        wait_for_port(osmand_port, proc=proc)
        eventually(lambda: httpx.get(f"{base}/healthz").json().get("events", "listening") == "listening")
        stream = RawStream(f"{base}/api/events/stream?topics=safety.position,test.", {"X-API-Key": key})
        eventually(lambda: stream.saw(": connected") or stream.ended.is_set(), timeout=30)
        assert stream.saw(": connected"), stream.lines

        # Two positions of someone else: an administrator's refusals, the first audited as it happens, the
        # second only counted — the tally written when the stream ends. The marker after them (same commit,
        # delivered in order) says both went through the stream.
        with db.session() as s:
            for lat in (37.50, 37.51):
                publish(s, "safety.position", {"person_id": SOMEONE, "lat": lat, "lon": 127.0}, users=[SOMEONE])
            publish(s, "test.marker", {})
        eventually(lambda: stream.saw("event: test.marker"), timeout=30)

        asked = time.monotonic()
        proc.send_signal(sig)
        # Generous waits: how fast a loaded machine reacts is not the question. Whether the stream ended before
        # uvicorn's graceful timeout is, and uvicorn itself says so in its log when it did not (asserted below).
        assert stream.ended.wait(GRACEFUL_SHUTDOWN_S * 10), "the stream was still open long after the stop"
        ended_in = stream.ended_at - asked
        proc.wait(60)
        stopped_in = time.monotonic() - asked
        print(f"stream ended {ended_in * 1000:.0f} ms, process exited {stopped_in * 1000:.0f} ms after the signal")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(15)
    said = proc.log.read_text(errors="replace")
    assert "timeout graceful shutdown exceeded" not in said, said
    assert "Exception in ASGI application" not in said, said
    assert "Traceback" not in said, said
    # Before the fix the stream outlived the graceful timeout (uvicorn logged that it cancelled it, above); the
    # times are printed, not asserted: they measure the machine.
    assert stream.status == 200 and not stream.saw("!!"), stream.lines
    assert stream.saw("retry: "), stream.lines  # a client reconnects (to another server) soon

    with db.session() as s:
        rows = audit.entries(s, object_type="safety_person", object_id=str(SOMEONE))
        said_of = [(r.action, r.actor, r.detail) for r in rows]
    tally = [d for a, _, d in said_of if a == "event_denied" and (d or {}).get("stream") == "closed"]
    assert tally == [{"via": "events", "events": 2, "stream": "closed"}], said_of
    with db.session() as s:
        subscribed = audit.entries(s, object_type="event_stream")
    assert [(r.action, r.actor) for r in subscribed] == [("subscribe_events", "admin1")]


def test_with_several_workers_every_worker_ends_its_streams(sqlite_url, tmp_path):
    """`serve --workers 2`: the supervisor passes the stop on to each worker (it looks at its signals every
    half second), whose streams then end at once: no worker waits out its graceful timeout."""
    db = Database(sqlite_url)
    try:
        make_user(db, "admin1", "admin")
        key = make_key(db, "admin1")
    finally:
        db.dispose()
    port = free_port()
    said_to = tmp_path / "serve.log"
    environ = {
        **os.environ,
        "SMARTCITY_DATABASE_URL": sqlite_url,
        "SMARTCITY_SECRET_KEY": "another-process",
        "SMARTCITY_VAR_DIR": str(tmp_path / "var"),
        "SMARTCITY_LOG_LEVEL": "warning",
        "SMARTCITY_OSMAND_PORT": "0",
    }
    with said_to.open("wb") as said:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartcity.cli", "serve", "--port", str(port), "--workers", "2"],
            env=environ,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=said,
        )
    try:
        wait_for_port(port, proc=proc)
        # Several streams, so that most likely each worker holds some (they accept from one shared socket).
        streams = [RawStream(f"http://127.0.0.1:{port}/api/events/stream", {"X-API-Key": key}) for _ in range(4)]
        eventually(lambda: all(s.saw(": connected") or s.ended.is_set() for s in streams), timeout=60)
        assert all(s.saw(": connected") for s in streams), [s.lines for s in streams]
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # Not timed against a bound: the supervisor's pace under the machine's load is uvicorn's, not ours.
        for s in streams:
            assert s.ended.wait(GRACEFUL_SHUTDOWN_S * 10), "a stream was still open"
        proc.wait(60)
        stopped_in = time.monotonic() - asked
        ended_in = max(s.ended_at for s in streams) - asked
        print(f"4 streams ended {ended_in * 1000:.0f} ms, 2 workers exited {stopped_in * 1000:.0f} ms after the signal")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(15)
    said = said_to.read_text(errors="replace")
    assert "timeout graceful shutdown exceeded" not in said, said
    assert "Exception in ASGI application" not in said, said
    assert "Traceback" not in said, said
    # Ended by the stop, each of them (a stream cancelled after the graceful timeout says nothing more).
    assert all(s.saw("retry: ") for s in streams), [s.lines for s in streams]
