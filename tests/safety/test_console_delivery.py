"""An SOS reaches the control room's console while the store's write lock is held by someone else.

Under the OsmAnd load the intake writer holds the store's one write lock (SQLite) most of the time. The console's
event stream audits the first live read of each person; that audit entry must not hold the event back
(measured: the SOS → console p99 went to 429 ms, all of it in the stream's audit write waiting for the lock).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.safety.engine import get_engine
from tests.conftest import LiveServer, eventually, make_key, make_settings
from tests.helpers import SSEReader
from tests.safety.helpers import fix, make_world

SOS_POINT = (37.4995, 127.0585)  # in Gangnam: the incident goes to Gangnam's control room


class AuditLock:
    """Another connection holding what an audit entry's insert needs: SQLite's write lock, or on PostgreSQL
    the audit table in EXCLUSIVE mode (reads go on, inserts wait)."""

    def __init__(self, db):
        self.db = db
        self.held = threading.Event()
        self._release = threading.Event()
        self._conn = None

    def take(self) -> None:
        if self.held.is_set():
            return
        if self.db.is_postgres:
            engine = create_engine(self.db.url)
            conn = engine.connect()
            conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
            self._conn = (engine, conn)
        else:
            conn = sqlite3.connect(make_url(self.db.url).database, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN IMMEDIATE")
            self._conn = (None, conn)
        self.held.set()

    def release(self) -> None:
        if self._conn is None:
            return
        engine, conn = self._conn
        self._conn = None
        if engine is None:
            conn.execute("ROLLBACK")
            conn.close()
        else:
            conn.rollback()
            conn.close()
            engine.dispose()


@pytest.fixture
def world(db, tmp_path):
    w = make_world(db)
    from smartcity.app import create_app

    app = create_app(make_settings(str(db.url), tmp_path), db)
    with LiveServer(app) as server:
        engine = get_engine(db)
        engine.intake_sync(fix(w.device, utcnow() - timedelta(minutes=5), (37.4970, 127.0620), battery=70.0))
        w.engine, w.server, w.key = engine, server, make_key(db, "op-gangnam")
        yield w


def test_the_console_gets_an_sos_while_its_audit_entry_waits_for_the_write_lock(db, world):
    """The operator's stream delivers the incident while another connection holds the write lock; the read is
    still audited once the lock is free."""
    w = world
    lock = AuditLock(db)
    # Taken the moment the incident is delivered in this process, before the stream gets its turn.
    db.events.on("safety.incident.opened", lambda ev: lock.take())
    url = f"{w.server.url}/api/events/stream?topics=safety.incident"
    try:
        with SSEReader(url, {"X-API-Key": w.key}) as reader:
            pending = w.engine.submit(fix(w.device, utcnow() - timedelta(seconds=5), SOS_POINT, alarm="sos"))
            assert lock.held.wait(10), "the incident was not opened"
            t0 = time.monotonic()
            deadline = t0 + 3
            while not reader.of("safety.incident.opened") and time.monotonic() < deadline:
                time.sleep(0.02)
            waited = time.monotonic() - t0
            delivered = reader.of("safety.incident.opened")
            lock.release()
            pending.result(10)
            assert delivered, "the console's event waited for the audit entry's write"
            assert delivered[0]["person_id"] == w.person_id
            assert waited < 2
            entries = eventually(
                lambda: _reads(db, w.person_id),
            )
            assert [e.actor for e in entries] == ["op-gangnam"]
    finally:
        lock.release()


def _reads(db, person_id: int) -> list[AuditEntry]:
    with db.session() as s:
        return list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "read_live",
                    AuditEntry.object_id == str(person_id),
                )
            )
        )
