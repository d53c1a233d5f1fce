"""The event bus: modules publish what happened (report created, alert raised); live pages and other
modules subscribe.

An event is published inside the caller's transaction and delivered only if that transaction commits.
Every process on the database sees every event: on PostgreSQL through NOTIFY/LISTEN; on SQLite through
the `event_log` table, written in the publishing transaction and read by each serving process's poller
(`PRAGMA data_version` on a connection of its own tells, without reading a page, whether anything was
committed since the last look), which delivers the rows other processes wrote. A process's own events
are delivered to it right after commit.

Personal events (a person's location, their alerts) are declared by the module that publishes them
(`personal(prefix, admit)`): their scope is never widened by `events.all` (or by an administrator's
every-permission), and a subscriber receives one only when the module's `admit` — the same rule its
REST reads apply — allows it. The stream audits the subscription, what it delivers and what it refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, Text, delete, insert, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from smartcity.core.db import Base, UTCDateTime, utcnow

log = logging.getLogger(__name__)
CHANNEL = "smartcity_events"
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes
LOG_POLL_S = 0.5  # how often a serving process looks for other processes' events (SQLite)
LOG_KEEP = timedelta(minutes=10)  # how long an event stays in the log; a process stalled longer misses it
LOG_PRUNE_S = 60.0


class EventLogRow(Base):
    """An event as it crosses processes on SQLite: its JSON and the bus that wrote it."""

    __tablename__ = "event_log"
    # AUTOINCREMENT: an id is never reused after pruning, so "after the last id I read" never skips a row.
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    payload: Mapped[str] = mapped_column(Text)


# --- stopping ---------------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def streams_end_on_stop(bus: EventBus) -> Iterator[None]:
    """While the app is served: a stop signal (SIGTERM, SIGINT) first ends the bus's open streams, then goes on
    to the handler the server installed (uvicorn's, in each worker process too).

    Uvicorn's graceful shutdown waits for every open response before the app's own shutdown runs, and an event
    stream never ends by itself: every stop with a console open waited out the graceful timeout, then cancelled
    the stream with a traceback. Only a handler that is Python's (a server's) is chained; signals reach the main
    thread only, so an app run in another thread (a test client) keeps its signals as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def stopping(sig: int, frame) -> None:
        # The handler runs between two bytecodes of the loop's thread: the streams are ended from the loop.
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing is left open
            loop.call_soon_threadsafe(bus.stop_streams)
        previous[sig](sig, frame)

    chained = [sig for sig, handler in previous.items() if callable(handler)]
    for sig in chained:
        signal.signal(sig, stopping)
    try:
        yield
    finally:
        for sig in chained:
            if signal.getsignal(sig) is stopping:  # not replaced since: put the server's own back
                signal.signal(sig, previous[sig])


# --- personal events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """A module's answer on one personal event for one subscriber: delivered or not, and what to audit."""

    allowed: bool
    action: str  # the audit action (e.g. a read, or a refusal)
    object_type: str
    object_id: Any = None
    detail: dict | None = None


@dataclass(frozen=True)
class PersonalTopic:
    """A module's personal topic: `admit(db, identity, event) -> Admission` decides each delivery within the
    event's scope; `subject(event) -> (object type, object id)` names whom an event is about, to audit a
    refusal the scope alone decides (no rule to ask, no store to read)."""

    prefix: str
    admit: Callable[[Any, Any, Event], Admission]
    subject: Callable[[Event], tuple[str, Any]]


_PERSONAL: list[PersonalTopic] = []


def personal(
    prefix: str, admit: Callable[[Any, Any, Event], Admission], subject: Callable[[Event], tuple[str, Any]]
) -> None:
    """Declare the events whose topic starts with `prefix` personal data. They reach a subscriber only
    within their scope (no `events.all` bypass) and only when `admit(db, identity, event)` allows it."""
    if not any(t.prefix == prefix for t in _PERSONAL):
        _PERSONAL.append(PersonalTopic(prefix, admit, subject))


def personal_topic(topic: str) -> PersonalTopic | None:
    """The declaration a personal topic falls under, None for an ordinary one."""
    for declared in _PERSONAL:
        if topic.startswith(declared.prefix):
            return declared
    return None


def may_carry_personal(topics: tuple[str, ...]) -> bool:
    """Whether a subscription to these topic prefixes (empty: all) can receive personal events."""
    if not topics:
        return bool(_PERSONAL)
    return any(d.prefix.startswith(t) or t.startswith(d.prefix) for t in topics for d in _PERSONAL)


@dataclass
class Event:
    topic: str
    data: dict[str, Any]
    audience: str | None = None  # a permission the subscriber must hold; None: public
    users: list[int] | None = None  # only these users (e.g. a person's guardians)
    district: str | None = None  # only units of this district (e.g. its control room)
    at: str = field(default_factory=lambda: utcnow().isoformat())
    seq: int = 0

    @property
    def personal(self) -> bool:
        return personal_topic(self.topic) is not None

    def visible_to(self, identity) -> bool:
        """Whether the event's scope takes in `identity`. A personal event is never let through by
        `events.all`; the stream also asks its module's rule (`personal_topic(...).admit`)."""
        if identity.can("events.all") and not self.personal:
            return True
        if self.audience and not identity.can(self.audience):
            return False
        if self.users is not None and identity.user_id not in self.users:
            return False
        return not (self.district and identity.district_code != self.district)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"), default=str)


class Subscription:
    """A live subscriber's queue; slow consumers are cut off rather than allowed to grow memory."""

    def __init__(
        self, bus: EventBus, loop: asyncio.AbstractEventLoop, topics: tuple[str, ...], size: int, identity=None
    ):
        self.bus, self.loop, self.topics = bus, loop, topics
        self.identity = identity  # who listens (None: the process itself), for publishers that ask who listens
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def wants(self, event: Event) -> bool:
        return self.wants_topic(event.topic)

    def wants_topic(self, topic: str) -> bool:
        return not self.topics or topic.startswith(self.topics)

    def _offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.bus.unsubscribe(self)

    async def get(self) -> Event | None:
        return await self.queue.get()

    def close(self) -> None:
        self.bus.unsubscribe(self)


class EventBus:
    def __init__(self, db):
        self.db = db
        self._subs: set[Subscription] = set()
        self._handlers: list[tuple[str, Callable[[Event], None]]] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._listener: asyncio.Task | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        self.listening = threading.Event()
        self.on_subscriptions: list[Callable[[], None]] = []  # called after a subscriber comes or goes
        self.origin = uuid.uuid4().hex[:16]  # this bus, as the event log names who wrote a row
        # Whether events published here go to the event log (SQLite). A process whose events reach its serving
        # process by other means (the safety writer's socket) turns it off, so they are not delivered twice.
        self.shared = True
        self.stopping = False  # the server is stopping: streams end, and any opened now ends at once
        # A disabled account's open streams end with it, in every process (core.accounts.set_active).
        self.on("user.disabled", lambda ev: self.end_streams_of(ev.data["id"]))

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, session: Session, topic: str, data: dict, *, transient: bool = False, **scope) -> Event:
        """Publish within `session`'s transaction: delivered after commit, dropped on rollback.

        `transient`: a live reading that the next one supersedes within seconds (a position). On SQLite it
        is not written to the event log — only this process's subscribers get it — which keeps the intake's
        hot path free of a log row per position (measured: +45 us of CPU per position)."""
        ev = Event(topic, data, **scope)
        if self.db.is_postgres:
            payload = ev.to_json()
            if len(payload.encode()) > NOTIFY_LIMIT:
                raise ValueError(f"event {topic} is too large for NOTIFY ({len(payload)} bytes)")
            if not transient:
                session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})
                return ev
            # Live readings (one per device and intake batch) go out in one statement at commit: a statement
            # each cost the intake's writer ~200 us of CPU per position on PostgreSQL.
            _watch(session)
            session.info.setdefault("pending_notify", []).append(payload)
        else:
            _watch(session)
            session.info.setdefault("pending_events", []).append(ev)
            if transient:
                session.info.setdefault("unlogged_events", set()).add(id(ev))
        return ev

    def on(self, topic_prefix: str, handler: Callable[[Event], None]) -> None:
        """Call `handler` in this process for every delivered event whose topic starts with the prefix."""
        self._handlers.append((topic_prefix, handler))

    def deliver(self, ev: Event) -> None:
        """Hand an event to this process's handlers and subscribers (any thread)."""
        ev.seq = next(self._seq)
        for prefix, handler in self._handlers:
            if ev.topic.startswith(prefix):
                try:
                    handler(ev)
                except Exception:
                    log.exception("event handler for %s failed", ev.topic)
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.wants(ev):
                sub.loop.call_soon_threadsafe(sub._offer, ev)

    # --- subscribing --------------------------------------------------------------------------

    def subscribe(self, topics: tuple[str, ...] = (), size: int = 1000, identity=None) -> Subscription:
        sub = Subscription(self, asyncio.get_running_loop(), topics, size, identity)
        if self.stopping:  # opened between the signal and the listener's closing: over before it starts
            sub.queue.put_nowait(None)
            return sub
        with self._lock:
            self._subs.add(sub)
        self._subscriptions_changed()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            present = sub in self._subs
            self._subs.discard(sub)
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)
        if present:
            self._subscriptions_changed()

    def listeners(self, topic: str) -> list:
        """The identities of this process's subscribers to `topic` (None for the process's own subscribers)."""
        with self._lock:
            subs = list(self._subs)
        return [sub.identity for sub in subs if sub.wants_topic(topic)]

    def _subscriptions_changed(self) -> None:
        for callback in self.on_subscriptions:
            try:
                callback()
            except Exception:
                log.exception("subscription watcher failed")

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def end_streams(self) -> None:
        """End every subscriber's stream, from any thread (each is ended in its own event loop): what `stop()`
        does to them at shutdown, for a server whose streams must close before its loop stops."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.loop.call_soon_threadsafe(self.unsubscribe, sub)

    def stop_streams(self) -> None:
        """The server is stopping: end every open stream now, and every one opened from now on at once."""
        self.stopping = True
        self.end_streams()

    def end_streams_of(self, user_id: int) -> None:
        """End the streams opened by one account's sessions or keys, from any thread."""
        with self._lock:
            subs = [sub for sub in self._subs if getattr(sub.identity, "user_id", None) == user_id]
        for sub in subs:
            sub.loop.call_soon_threadsafe(self.unsubscribe, sub)

    # --- crossing processes -------------------------------------------------------------------

    async def start(self) -> None:
        """Receive other processes' events (a serving process does this at startup)."""
        self.stopping = False
        if self.db.is_postgres:
            if self._listener is None:
                self._listener = asyncio.create_task(self._listen())
        else:
            self.start_polling()

    def start_polling(self) -> None:
        """SQLite: start the thread that delivers the event log's rows written by other processes."""
        path = make_url(self.db.url).database
        if self._poller is None and not self.db.is_postgres and path and path != ":memory:":
            self._stop_polling.clear()
            try:
                last = _log_tail(path)  # from now on: events older than this process are not replayed
            except sqlite3.Error:
                log.warning("no event log in %s (not migrated?): other processes' events will not arrive", path)
                return
            self._poller = threading.Thread(target=self._poll, args=(path, last), name="event-log", daemon=True)
            self._poller.start()

    def stop_polling(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            self._stop_polling.set()
            poller.join(10)
            self.listening.clear()

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._poller is not None:
            await asyncio.to_thread(self.stop_polling)
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            self.unsubscribe(sub)

    async def _listen(self) -> None:
        import psycopg

        conninfo = make_url(self.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    async for note in conn.notifies():
                        try:
                            self.deliver(Event(**json.loads(note.payload)))
                        except (ValueError, TypeError):
                            log.warning("ignored a malformed event payload")
            except asyncio.CancelledError:
                self.listening.clear()
                raise
            except Exception:
                self.listening.clear()
                log.exception("event listener lost its connection; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def _poll(self, path: str, last: int) -> None:
        """The SQLite poller: a look at `PRAGMA data_version` every LOG_POLL_S; the new rows only when it
        moved, other processes' only; the log pruned every LOG_PRUNE_S."""
        conn = None
        seen_version = None
        next_prune = time.monotonic() + LOG_PRUNE_S  # not at startup, when the store is busiest
        while not self._stop_polling.is_set():
            try:
                if conn is None:
                    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
                    seen_version = None
                    self.listening.set()
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen_version:  # something was committed by another connection: read what is new
                    seen_version = version
                    rows = conn.execute(
                        "SELECT id, origin, payload FROM event_log WHERE id > ? ORDER BY id", (last,)
                    ).fetchall()
                    for row_id, origin, payload in rows:
                        last = row_id
                        if origin == self.origin:
                            continue
                        try:
                            self.deliver(Event(**json.loads(payload)))
                        except (ValueError, TypeError):
                            log.warning("ignored a malformed event in the event log")
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + LOG_PRUNE_S
                    self.prune()
            except sqlite3.Error:
                log.exception("reading the event log failed; retrying")
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):  # the connection is already broken
                        conn.close()
                conn = None
            self._stop_polling.wait(LOG_POLL_S)
        if conn is not None:
            conn.close()

    def prune(self) -> None:
        """Delete the event log's rows older than LOG_KEEP (each serving process does it every minute)."""
        try:
            with self.db.session() as s:
                s.execute(delete(EventLogRow).where(EventLogRow.at < utcnow() - LOG_KEEP))
        except SQLAlchemyError:  # a busy store: the next round prunes
            log.warning("pruning the event log failed", exc_info=True)


def _log_tail(path: str) -> int:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        return conn.execute("SELECT coalesce(max(id), 0) FROM event_log").fetchone()[0]
    finally:
        conn.close()


# A session's events wait for its outermost commit. SQLAlchemy also runs a session's commit hooks when a
# savepoint (begin_nested) is released, and its rollback hooks when one is rolled back: those must neither
# deliver what the enclosing transaction has not committed yet nor drop what was published before the
# savepoint. (Found in the safety console: an SOS's incident event reached a subscriber, whose admission
# check then read the store and did not find the incident yet, when a later alert of the same batch
# released a savepoint.)


def _watch(session: Session) -> None:
    """Hook the session's transaction ends once, on its first pending event."""
    if session.info.get("events_watched"):
        return
    session.info["events_watched"] = True
    sa_event.listen(session, "after_transaction_create", _mark_savepoint)
    sa_event.listen(session, "before_commit", _before_commit)
    sa_event.listen(session, "after_commit", _after_commit)
    sa_event.listen(session, "after_soft_rollback", _after_rollback)


def _nested(session: Session) -> bool:
    """Whether the transaction being committed is a savepoint within the session's transaction (it is still
    the session's current one while its commit hooks run)."""
    return session.in_nested_transaction()


def _mark_savepoint(session: Session, transaction) -> None:
    if transaction.nested:  # what is pending when a savepoint begins stays if it is rolled back
        marks = session.info.setdefault("event_marks", {})
        marks[transaction] = (len(session.info.get("pending_events", ())), len(session.info.get("pending_notify", ())))


def _before_commit(session: Session) -> None:
    if _nested(session):
        return
    db = session.info.get("db")
    if db is None:
        return
    if db.is_postgres:
        payloads = session.info.pop("pending_notify", None)
        if payloads:
            session.execute(
                text("SELECT pg_notify(:c, p) FROM unnest(CAST(:ps AS text[])) AS p"), {"c": CHANNEL, "ps": payloads}
            )
    elif db.events.shared:
        unlogged = session.info.get("unlogged_events", ())
        rows = [ev for ev in session.info.get("pending_events", ()) if id(ev) not in unlogged]
        if rows:
            now = utcnow()
            session.execute(
                insert(EventLogRow), [{"origin": db.events.origin, "at": now, "payload": ev.to_json()} for ev in rows]
            )


def _after_commit(session: Session) -> None:
    if _nested(session):
        return
    session.info.pop("unlogged_events", None)
    session.info.pop("event_marks", None)
    pending = session.info.pop("pending_events", [])
    db = session.info.get("db")
    for ev in pending:
        if db is not None:
            db.events.deliver(ev)


def _after_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.nested:  # back to the savepoint: only what was published within it is dropped
        events, notifies = session.info.get("event_marks", {}).pop(previous_transaction, (0, 0))
        if "pending_events" in session.info:
            del session.info["pending_events"][events:]
        if "pending_notify" in session.info:
            del session.info["pending_notify"][notifies:]
        return
    for key in ("pending_events", "pending_notify", "unlogged_events", "event_marks"):
        session.info.pop(key, None)


def publish(session: Session, topic: str, data: dict, **scope) -> Event:
    """Publish an event from service code, through the bus of the session's database."""
    return session.info["db"].events.publish(session, topic, data, **scope)
