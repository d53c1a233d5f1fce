"""The event bus: modules publish what happened (report created, alert raised); live pages and other
modules subscribe.

An event is published inside the caller's transaction and delivered only if that transaction commits.
With PostgreSQL as the store, delivery goes through NOTIFY/LISTEN, so every process on the database
sees every event; with SQLite (one process) events are delivered within the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from smartcity.core.db import utcnow

log = logging.getLogger(__name__)
CHANNEL = "smartcity_events"
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes


@dataclass
class Event:
    topic: str
    data: dict[str, Any]
    audience: str | None = None  # a permission the subscriber must hold; None: public
    users: list[int] | None = None  # only these users (e.g. a person's guardians)
    district: str | None = None  # only units of this district (e.g. its control room)
    at: str = field(default_factory=lambda: utcnow().isoformat())
    seq: int = 0

    def visible_to(self, identity) -> bool:
        if identity.can("events.all"):
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

    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop, topics: tuple[str, ...], size: int,
                 identity=None):
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
        self.listening = threading.Event()
        self.on_subscriptions: list[Callable[[], None]] = []  # called after a subscriber comes or goes

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, session: Session, topic: str, data: dict, **scope) -> Event:
        """Publish within `session`'s transaction: delivered after commit, dropped on rollback."""
        ev = Event(topic, data, **scope)
        if self.db.is_postgres:
            payload = ev.to_json()
            if len(payload.encode()) > NOTIFY_LIMIT:
                raise ValueError(f"event {topic} is too large for NOTIFY ({len(payload)} bytes)")
            session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})
        else:
            pending = session.info.setdefault("pending_events", [])
            if not pending:
                sa_event.listen(session, "after_commit", _deliver_pending, once=True)
                sa_event.listen(session, "after_rollback", _drop_pending, once=True)
            pending.append(ev)
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

    # --- crossing processes (PostgreSQL) ------------------------------------------------------

    async def start(self) -> None:
        if self.db.is_postgres and self._listener is None:
            self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
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


def _deliver_pending(session: Session) -> None:
    pending = session.info.pop("pending_events", [])
    bus = session.info.get("db").events if session.info.get("db") else None
    for ev in pending:
        if bus is not None:
            bus.deliver(ev)


def _drop_pending(session: Session) -> None:
    session.info.pop("pending_events", None)


def publish(session: Session, topic: str, data: dict, **scope) -> Event:
    """Publish an event from service code, through the bus of the session's database."""
    return session.info["db"].events.publish(session, topic, data, **scope)
