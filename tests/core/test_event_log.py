"""Events across processes on SQLite: the event log, written in the publishing transaction and read by each
serving process's poller (PRAGMA data_version), as NOTIFY/LISTEN does on PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
from sqlalchemy import delete, func, select, update

from smartcity.core.db import Database, utcnow
from smartcity.core.events import Event, EventLogRow, publish
from tests import synthetic
from tests.conftest import eventually, make_key, make_user
from tests.helpers import SSEReader, run_async, run_cli, serve
from tests.servers import free_port, wait_for_port


def _log_rows(db) -> list[EventLogRow]:
    with db.session() as s:
        return list(s.scalars(select(EventLogRow).order_by(EventLogRow.id)))


def test_a_committed_event_is_logged_once_and_a_rolled_back_one_never(sqlite_url):
    db = Database(sqlite_url)
    try:
        with db.session() as s:
            publish(s, "test.kept", {"n": 1})
            publish(s, "test.kept", {"n": 2})
        try:
            with db.session() as s:
                publish(s, "test.dropped", {"n": 3})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        rows = [r for r in _log_rows(db) if json.loads(r.payload)["topic"].startswith("test.")]
        assert [Event(**json.loads(r.payload)).data["n"] for r in rows] == [1, 2]
        assert {r.origin for r in rows} == {db.events.origin}
    finally:
        db.dispose()


def test_another_process_events_are_delivered_and_our_own_are_not_delivered_twice(sqlite_url):
    """Two stores opened on one file are two processes as far as the log goes (each bus its own origin)."""
    server, cli = Database(sqlite_url), Database(sqlite_url)
    got: list[Event] = []
    server.events.on("test.", got.append)
    server.events.start_polling()
    try:
        assert server.events.listening.wait(30)
        with cli.session() as s:
            publish(s, "test.from_cli", {"n": 1})
        eventually(lambda: [e.topic for e in got] == ["test.from_cli"])
        with server.session() as s:
            publish(s, "test.own", {"n": 2})
        time.sleep(1.5)  # three polls: a second copy of our own event would have come back by now
        assert [e.topic for e in got] == ["test.from_cli", "test.own"]
    finally:
        server.events.stop_polling()
        server.dispose()
        cli.dispose()


def test_a_transient_event_is_delivered_here_but_not_logged(sqlite_url):
    """Live readings (positions) stay in the publishing process: no log row each on the intake's hot path."""
    db = Database(sqlite_url)
    got: list[Event] = []
    db.events.on("test.", got.append)
    try:
        with db.session() as s:
            publish(s, "test.position", {"n": 1}, transient=True)
            publish(s, "test.change", {"n": 2})
        assert [e.topic for e in got] == ["test.position", "test.change"]
        logged = [json.loads(r.payload)["topic"] for r in _log_rows(db)]
        assert "test.change" in logged and "test.position" not in logged
    finally:
        db.dispose()


def test_old_rows_are_pruned(sqlite_url):
    db = Database(sqlite_url)
    try:
        with db.session() as s:
            s.execute(delete(EventLogRow))  # what the template's seeding logged
            publish(s, "test.old", {})
            publish(s, "test.new", {})
        with db.session() as s:
            first = s.scalar(select(func.min(EventLogRow.id)))
            s.execute(update(EventLogRow).where(EventLogRow.id == first).values(at=utcnow() - timedelta(hours=1)))
        db.events.prune()
        assert [json.loads(r.payload)["topic"] for r in _log_rows(db)] == ["test.new"]
        with db.session() as s:  # even with the log empty, an id is never reused: a poller never skips a row
            s.execute(delete(EventLogRow))
        with db.session() as s:
            publish(s, "test.after", {})
        assert _log_rows(db)[-1].id > first + 1
    finally:
        db.dispose()


def test_a_cli_import_and_another_process_event_reach_a_running_sqlite_server(sqlite_url, tmp_path, synthetic_dir):
    """The issue: on SQLite, a change made by the CLI or another process never reached a running server."""
    db = Database(sqlite_url)
    make_user(db, "admin1", "admin")
    key = make_key(db, "admin1")
    port = free_port()
    proc = serve(sqlite_url, tmp_path / "var", port)
    try:
        wait_for_port(port, proc=proc)
        base = f"http://127.0.0.1:{port}"
        eventually(lambda: httpx.get(f"{base}/healthz").json().get("events") == "listening")
        with SSEReader(f"{base}/api/events/stream?topics=user.,geo.", {"X-API-Key": key}) as stream:
            # This test process is the other process: its event reaches the server's subscriber.
            sent = time.monotonic()
            with db.session() as s:
                publish(s, "user.created", {"username": "from-elsewhere"}, audience="users.manage")
            assert eventually(lambda: stream.of("user.created"))[0]["username"] == "from-elsewhere"
            latency = time.monotonic() - sent
            print(f"another process's event reached the server's subscriber in {latency * 1000:.0f} ms")
            assert latency < 3, latency

            # The CLI imports neighbourhoods; the server's spatial index is rebuilt from its event.
            assert httpx.get(f"{base}/api/geo/locate?lat=37.5116&lon=127.0594").json()["neighbourhood"] is None
            hoods = synthetic_dir / "neighbourhoods.geojson"
            run_cli(sqlite_url, "import", "neighbourhoods", str(hoods))
            assert eventually(lambda: stream.of("geo.changed"))
            hood = httpx.get(f"{base}/api/geo/locate?lat=37.5116&lon=127.0594").json()["neighbourhood"]
            assert hood and hood["code"] in synthetic.codes_at(hoods, 37.5116, 127.0594)
    finally:
        proc.terminate()
        proc.wait(30)
        db.dispose()


def test_polling_costs_little_when_nothing_changes(sqlite_url):
    """What a poll costs when nothing was committed: the PRAGMA alone (measured, printed)."""
    import sqlite3

    path = sqlite_url.split("///", 1)[1]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        n = 2000
        start = time.perf_counter()
        versions = {conn.execute("PRAGMA data_version").fetchone()[0] for _ in range(n)}
        per_poll_us = (time.perf_counter() - start) / n * 1e6
    finally:
        conn.close()
    print(f"PRAGMA data_version: {per_poll_us:.1f} us per poll")
    assert len(versions) == 1  # nothing changed: the poller reads no row at all
    assert per_poll_us < 1000


def test_the_bus_starts_its_poller_with_the_app(sqlite_url):
    db = Database(sqlite_url)

    async def run():
        await db.events.start()
        try:
            return db.events.listening.wait(30)
        finally:
            await db.events.stop()

    try:
        assert run_async(run())
        assert not db.events.listening.is_set()
    finally:
        db.dispose()
