"""The writer process's side of `writer.py` (run as `python -m smartcity.safety.writer_child FD_IN FD_OUT`):
an engine on its own connection to the store, reading positions and changes from the serving process's
socket, writing them in batches, and answering with acknowledgments and events."""

from __future__ import annotations

import contextlib
import gc
import logging
import pickle
import sys
import threading
from multiprocessing.connection import Connection

from smartcity.core.context import context_of
from smartcity.core.intake import BatchOutcome, Columns
from smartcity.safety.common import ENGINE
from smartcity.safety.engine import Overloaded
from smartcity.safety.writer_protocol import pack_outcome, unpack_outcome, unpack_position

log = logging.getLogger(__name__)

GC_YOUNG = 20_000  # allocations between the writer process's young-generation collections (Python's default: 700)


class _Outbox:
    """What the writer process sends back: acknowledgments and events, one message per batch."""

    def __init__(self, conn):
        self.conn = conn
        self.items: list = []
        self.lock = threading.Lock()

    def acks(self, outcomes: list) -> None:
        packed = [(token, pack_outcome(o)) for token, o in outcomes]
        with self.lock:
            self.items.append(("a", packed))
        self.flush()

    def event(self, ev) -> None:
        with self.lock:
            self.items.append(("e", [(ev.topic, ev.data, ev.audience, ev.users, ev.district, ev.at)]))

    def flush(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            if items:
                self.conn.send_bytes(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))


def child_main(fd_in: int, fd_out: int) -> None:
    """The writer process: an engine on its own connection to the store, fed through the socket `fd_in`,
    answering through `fd_out`."""
    conn, out = Connection(fd_in), Connection(fd_out)
    settings, url, profile = pickle.loads(conn.recv_bytes())
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s: [safety-writer] %(message)s")
    try:
        engine, outbox = _child_start(out, settings, url, profile)
    except Exception as exc:  # noqa: BLE001 - tell the parent why, then end
        log.exception("the safety writer failed to start")
        with contextlib.suppress(OSError):
            out.send_bytes(pickle.dumps(("failed", repr(exc))))
        return
    out.send_bytes(pickle.dumps(("ready",)))
    try:
        _child_loop(conn, engine, outbox)
    finally:
        engine.stop()
        with contextlib.suppress(OSError):
            outbox.flush()
        out.close()
        conn.close()


def _child_start(conn, settings, url: str, profile):
    from sqlalchemy import event

    from smartcity.core.db import Database
    from smartcity.models import load_all
    from smartcity.safety.engine import SafetyEngine

    load_all()
    db = Database(url)
    db.events.shared = False  # SQLite: its events reach the serving process through the socket, not the event log
    if not db.is_postgres:
        # This process's commits never checkpoint: the engine's checkpoint thread does.
        event.listen(db.engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA wal_autocheckpoint = 0"))
    engine = SafetyEngine(db, settings, profile, background_checkpoints=True)
    context_of(db).slots[ENGINE] = engine  # what this process's services see as its intake
    db.events.on("safety.", lambda ev: engine.handle(ev.topic, ev.data))
    outbox = _Outbox(conn)
    engine.on_resolved = outbox.acks
    if not db.is_postgres:  # PostgreSQL's NOTIFY already reaches the serving process
        db.events.on("", outbox.event)
    engine.start(writer_thread=False)  # _child_loop is the writer: no second thread to share the lock with
    # The registry just loaded (devices, zones, states: millions of objects for a large city) lives as long as
    # the process: keep the cyclic garbage collector from walking it again and again (measured: a sixth of the
    # writer's time at 100,000 devices), and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 20)
    return engine, outbox


def _child_loop(conn, engine, outbox: _Outbox) -> None:
    """One thread reads the socket and writes the batches: what arrived while a batch was being written is
    read at once and becomes the next batch (alarms first)."""
    while True:
        if conn.poll(0 if engine.queued else 0.5):
            for _ in range(256):  # what has arrived, but never so much that writing starves
                try:
                    messages = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    return
                if _take_messages(messages, engine, outbox):
                    return
                if engine.queue.urgent:
                    # An alarm is written now, before the rest of what arrived is read and validated (measured
                    # under OsmAnd load: reading 256 more messages first kept an SOS waiting up to 86 ms).
                    break
                if not conn.poll(0):
                    break
        engine.write_queued()


def _take_messages(messages: list, engine, outbox: _Outbox) -> bool:
    """Validate and queue the positions of the messages, apply the changes; True on "stop"."""
    items, refused = [], []
    stop = False
    backlogged = engine.backlogged()
    for message in messages:
        kind = message[0]
        if kind == "p":
            token = message[1]
            try:
                item = engine.validate(unpack_position(message[2]))
            except Exception as exc:  # noqa: BLE001 - refused (a store error: 503), never the writer's end
                refused.append((token, exc))
                continue
            if backlogged is not None and not item.urgent:
                refused.append((token, backlogged))
                continue
            item.token = token
            items.append(item)
        elif kind == "u":
            try:
                positions = [unpack_outcome(p[1]) if len(p) == 2 else unpack_position(p) for p in message[2]]
                engine.queue_unit(positions, None, token=message[1])
            except Exception as exc:  # noqa: BLE001 - as above, for the whole unit
                log.exception("a batch of positions could not be queued")
                refused.append((message[1], exc))
        elif kind == "c":
            _, token, cols, n, errors = message
            try:
                engine.queue_columns(Columns(cols, n), {i: unpack_outcome(e) for i, e in errors.items()}, token=token)
            except Exception as exc:  # noqa: BLE001 - as above, for the whole batch
                log.exception("a batch of positions could not be queued")
                refused.append((token, BatchOutcome.refused(n, exc)))
        elif kind == "h":
            try:
                engine.handle(message[1], message[2])
            except Exception:  # noqa: BLE001 - a failed reload must not stop the intake
                log.exception("handling %s failed", message[1])
        elif kind == "w":
            engine.live_watch = message[1]
        elif kind == "stop":
            stop = True
    if items:
        try:
            engine.queue.put(items)
        except Overloaded as exc:
            refused.extend((item.token, exc) for item in items)
    if refused:
        outbox.acks(refused)
    return stop


if __name__ == "__main__":
    child_main(int(sys.argv[1]), int(sys.argv[2]))
