"""The intake writer in a process of its own (SMARTCITY_SAFETY_WRITER=process, the default).

Storing a position (zone rules, SQL, acknowledgments) costs more CPU than receiving it over HTTP. In the
serving process both would share one interpreter lock, so one core would do all the work while the other
waited. Here each serving process starts one writer process (`writer_child.py`) running the
`SafetyEngine`; the serving process keeps only the protocol decoders and a `WriterProcess`, which has the
engine's intake API (`intake`, `intake_all`, `submit`, `submit_all`) and forwards positions over a socket
pair each way:

    serving process                                   writer process (one thread, no lock to share)
    decoders → WriterProcess ── positions ──────────▶ read what arrived → engine.validate → queue
               (one message per event-loop turn;        → write one batch (alarms first) → read again
                never blocking the loop: _Sender)
    event loop ◀── acknowledgments, errors, events ──  on_resolved (one message per batch)

A position is still acknowledged only after the writer's transaction holding it has committed.

Events the writer publishes (incidents, alerts, live positions) reach the serving process's subscribers
(the guardians' and control rooms' live pages): on SQLite through the socket, on PostgreSQL through
NOTIFY like every other process's. Changes made in the serving process (zones, registry, incident
status) reach the writer through `handle`, as they reach an in-process engine.

If the writer process ends unexpectedly, the positions waiting for it get 503 (the devices retry; what
was committed is found again as a duplicate) and the next position starts a new writer.

writer_protocol.py has what crosses the socket (packing, the errors that cross, the non-blocking sender);
`WriterPool` splits devices between several writer processes (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import zlib
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from smartcity.core.errors import SmartCityError
from smartcity.core.intake import BatchOutcome, Columns
from smartcity.safety.engine import Ack, Position
from smartcity.safety.writer_protocol import WriterFailed, _Sender, pack_outcome, pack_position, unpack_outcome

__all__ = ["WriterFailed", "WriterPool", "WriterProcess", "owner_of"]  # WriterFailed: re-exported

log = logging.getLogger(__name__)

FORWARDED_TOPICS = ("safety.incident.", "safety.zones.", "safety.registry.")  # what the writer's engine reacts to
START_TIMEOUT_S = 300  # loading 100,000 devices and their zones takes seconds; a large city more


# --- the serving process's side -------------------------------------------------------------------


class WriterProcess:
    """The engine's intake API, served by a writer process (started on first use, like the engine)."""

    def __init__(self, db, settings, profile=None):
        self.db, self.settings, self.profile = db, settings, profile
        self._tokens = itertools.count(1)
        self._waiting: dict[int, tuple[Any, Any]] = {}  # token → (asyncio future, loop) or (Future, None)
        self._out: list = []
        self._out_lock = threading.Lock()
        self._sender: _Sender | None = None
        self._flush_scheduled = False
        self._start_lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._reader: threading.Thread | None = None
        try:  # the serving process's event loop (the app starts the engine in it): answers are read there
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._stopping = False
        self._ready = False
        self._watched: tuple | None = None
        self._local = threading.local()  # .echo: delivering the writer's own events (not sent back to it)

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Positions (and gateway batches) handed to the writer and not yet answered."""
        return len(self._waiting)

    @property
    def process(self) -> subprocess.Popen | None:
        """The writer's process while one runs (its pid, its exit status), for supervision and tests."""
        return self._proc

    @property
    def running(self) -> bool:
        # No waitpid per position: a writer that ended is noticed by the end of its socket (`_ended`).
        return self._ready and self._conn is not None

    def start(self) -> WriterProcess:
        with self._start_lock:
            if self.running:
                return self
            # A new interpreter (never a fork of a process with an event loop and threads), talking over two
            # socket pairs (one each way); it is told what to open in the first message.
            to_child, child_in = socket.socketpair()
            child_out, from_child = socket.socketpair()
            fds = (child_in.fileno(), child_out.fileno())
            proc = subprocess.Popen(
                [sys.executable, "-m", "smartcity.safety.writer_child", *map(str, fds)], pass_fds=fds, env=_child_env()
            )
            child_in.close()
            child_out.close()
            ours = Connection(from_child.detach())
            settings = self.settings.with_env(SMARTCITY_SAFETY_WRITER="thread")
            self._ready = False
            sender = _Sender(to_child)
            sender.send(pickle.dumps((settings, self.db.url, self.profile)))
            # From now on changes (`handle`) are sent: made while the writer loads the registry, they wait in
            # the socket and are applied once it is ready.
            self._proc, self._conn, self._sender = proc, ours, sender
            hello = ("failed", "it did not answer in time")
            try:
                if ours.poll(START_TIMEOUT_S):
                    hello = pickle.loads(ours.recv_bytes())
            except (EOFError, OSError):
                hello = ("failed", "the process ended")
            if hello[0] != "ready":
                self._proc = self._conn = None
                sender.close()
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
                raise WriterFailed(f"the safety writer process failed to start: {hello[1]}")
            self._ready = True
            self._listen(ours)
            if not self.db.is_postgres:
                # Live positions are published only while a subscriber here could want them (on PostgreSQL a
                # subscriber may be in any process: they are always published).
                if self._watch not in self.db.events.on_subscriptions:
                    self.db.events.on_subscriptions.append(self._watch)
                self._watched = None
                self._watch()
            log.info("safety intake writer process %s started", proc.pid)
        return self

    def stop(self, timeout: float = 30) -> None:
        """Let the writer flush what it holds and end; then fail whatever is still waiting."""
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        self._stopping = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._flush()
            self._sender.send(pickle.dumps([("stop",)]))
        if self._reader is not None:
            self._reader.join(timeout)
        else:  # read by the event loop, which is here: read the last answers in place
            self._unlisten(conn)
            with contextlib.suppress(EOFError, OSError):
                while conn.poll(timeout):
                    self._dispatch(pickle.loads(conn.recv_bytes()))
        if self._sender is not None:
            self._sender.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        self._proc = self._conn = None
        self._ready = self._stopping = False
        self._fail_all("the safety writer stopped")

    # --- the intake API ---------------------------------------------------------------------------

    def submit(self, position: Position) -> Future:
        future: Future = Future()
        message = ("p", self._wait(future, None), pack_position(position))
        if position.alarm == "sos":
            self._send_now(message)
        else:
            self._send(message)
        return future

    def submit_all(self, positions: list) -> Future:
        future: Future = Future()
        self._send(("u", self._wait(future, None), [self._pack_item(p) for p in positions]))
        return future

    async def intake(self, position: Position) -> Ack:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        message = ("p", self._wait(waiter, loop), pack_position(position))
        if position.alarm == "sos":
            self._send_now(message)
        else:
            self._send(message, loop)
        return await waiter

    async def intake_all(self, positions: list) -> list:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._send(("u", self._wait(waiter, loop), [self._pack_item(p) for p in positions]), loop)
        return await waiter

    def columns_future(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> asyncio.Future:
        """A decoded batch as columns (numpy arrays cross the socket as buffers, not one object per position),
        sent now with whatever else waits to go; `errors` are the rows the decoder refused. The running loop's
        future gets one `BatchOutcome`."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        packed = {i: pack_outcome(e) for i, e in (errors or {}).items()}
        message = ("c", self._wait(waiter, loop), cols.cols, cols.n, packed)
        # Not left for the end of the loop's turn: a batch is itself what a turn gathered (RowBatcher), and each
        # turn more is a wait for every request in it.
        with self._out_lock:
            self._out.append(message)
        self._flush()
        return waiter

    async def intake_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> BatchOutcome:
        return await self.columns_future(cols, errors)

    def submit_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> Future:
        future: Future = Future()
        packed = {i: pack_outcome(e) for i, e in (errors or {}).items()}
        self._send(("c", self._wait(future, None), cols.cols, cols.n, packed))
        return future

    def intake_sync(self, position: Position, timeout: float = 10) -> Ack:
        return self.submit(position).result(timeout)

    def handle(self, topic: str, data: dict) -> None:
        """A change event in this process (or, on PostgreSQL, any other): the writer's engine reacts to it."""
        if topic.startswith(FORWARDED_TOPICS) and self._conn is not None and not getattr(self._local, "echo", False):
            self._send(("h", topic, data))

    def _watch(self) -> None:
        """Tell the writer who listens to live positions here: (everything, guardian user ids, operators)."""
        everything, users, operators = False, set(), False
        for identity in self.db.events.listeners("safety.position"):
            if identity is None or identity.can("events.all"):
                everything = True
                break
            if identity.user_id is not None:
                users.add(identity.user_id)
            operators = operators or identity.can("safety.operate")
        watched = (everything, frozenset(users), operators)
        if watched != self._watched and self._conn is not None:
            self._watched = watched
            self._send(("w", watched))

    # --- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _pack_item(p) -> Any:
        if isinstance(p, Position):
            return pack_position(p)
        return ("!", pack_outcome(p))  # a decoding error, passed through in its place (a pair, not a position)

    def _wait(self, target, loop) -> int:
        if not self.running:
            self.start()
        token = next(self._tokens)
        self._waiting[token] = (target, loop)
        return token

    def _send(self, message: tuple, loop=None) -> None:
        """Queue a message; the queue is sent once per turn of the serving process's event loop (from another
        thread, e.g. MQTT's, the loop is asked to send it), or at once when there is no running loop."""
        with self._out_lock:
            self._out.append(message)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        if loop is not None:
            loop.call_soon(self._flush)
            return
        own = self._loop
        if own is not None and own.is_running() and not own.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: send from here
                own.call_soon_threadsafe(self._flush)
                return
        self._flush()

    def _send_now(self, message: tuple) -> None:
        """An alarm goes at once, in a message of its own, ahead of what waits for the end of the loop's turn
        (measured under OsmAnd load: an SOS sent with the turn's other positions waited while the writer read
        and validated them all)."""
        self._transmit([message])

    def _flush(self) -> None:
        with self._out_lock:
            out, self._out = self._out, []
            self._flush_scheduled = False
        if out:
            self._transmit(out)

    def _transmit(self, out: list) -> None:
        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._sender.send(data)
        except (OSError, ValueError, AttributeError):
            log.error("the safety writer process is gone; %d messages refused", len(out))
            for message in out:
                if message[0] in ("p", "u", "c"):
                    failed = WriterFailed("the safety writer is restarting; retry")
                    self._settle(message[1], BatchOutcome.refused(message[3], failed) if message[0] == "c" else failed)

    def _listen(self, conn) -> None:
        """Read the writer's answers in the serving process's event loop when there is one (no thread to hand
        the interpreter lock to and from), else in a thread of their own."""
        self._reader = None
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                current = asyncio.get_running_loop()
            except RuntimeError:
                current = None
            if current is loop:
                self._add_reader(loop, conn)
            else:
                loop.call_soon_threadsafe(self._add_reader, loop, conn)
            return
        self._reader = threading.Thread(target=self._read, args=(conn,), name="safety-writer-acks", daemon=True)
        self._reader.start()

    def _add_reader(self, loop, conn) -> None:
        loop.add_reader(conn.fileno(), self._readable, conn)
        # The loop may have made the socket non-blocking: a message is read whole once it starts arriving
        # (the writer sends each at once), never half.
        os.set_blocking(conn.fileno(), True)

    def _unlisten(self, conn) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                loop.remove_reader(conn.fileno())

    def _readable(self, conn) -> None:
        try:
            while conn.poll(0):
                self._dispatch(pickle.loads(conn.recv_bytes()))
        except (EOFError, OSError):
            self._unlisten(conn)
            self._ended(conn)

    def _dispatch(self, messages: list) -> None:
        for message in messages:
            if message[0] == "a":
                self._settle_many(message[1])
            elif message[0] == "e":
                self._deliver(message[1])

    def _read(self, conn) -> None:
        while True:
            try:
                messages = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            self._dispatch(messages)
        self._ended(conn)

    def _ended(self, conn) -> None:
        if self._conn is conn and not self._stopping:  # it ended by itself: the next position starts a new one
            log.error("the safety writer process ended")
            self._proc = self._conn = None
            self._ready = False
            if self._sender is not None:
                self._sender.close(wait=False)
        self._fail_all("the safety writer process ended before storing the position; retry")

    def _settle_many(self, outcomes: list) -> None:
        by_loop: dict[Any, list] = {}
        waiting = self._waiting
        for token, packed in outcomes:
            entry = waiting.pop(token, None)
            if entry is None:
                continue
            target, loop = entry
            outcome = unpack_outcome(packed)
            if loop is None:
                _set(target, outcome)
            else:
                by_loop.setdefault(loop, []).append((target, outcome))
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, batch in by_loop.items():
            if loop is current:
                _set_all(batch)
                continue
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_set_all, batch)

    def _settle(self, token: int, outcome: Any) -> None:
        entry = self._waiting.pop(token, None)
        if entry is not None:
            target, loop = entry
            if loop is None:
                _set(target, outcome)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_set, target, outcome)

    def _fail_all(self, why: str) -> None:
        for token in list(self._waiting):
            self._settle(token, WriterFailed(why))

    def _deliver(self, events: list) -> None:
        from smartcity.core.events import Event

        bus = self.db.events
        # The writer has applied its own events: `handle` must not send them back (and this thread, which
        # reads the writer's socket, must never wait on writing to it).
        self._local.echo = True
        try:
            for topic, data, audience, users, district, at in events:
                bus.deliver(Event(topic, data, audience=audience, users=users, district=district, at=at))
        finally:
            self._local.echo = False


def _set(target, outcome) -> None:
    if target.done():
        return
    if isinstance(outcome, BaseException):
        target.set_exception(outcome)
    else:
        target.set_result(outcome)


def _set_all(batch: list) -> None:
    for target, outcome in batch:
        _set(target, outcome)


def _child_env() -> dict:
    """The serving process's environment, with its import path (it may run from a source tree)."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + env.get("PYTHONPATH", "").split(os.pathsep)))
    return env


# --- several writer processes, devices split between them ------------------------------------------


def owner_of(identifier: str, writers: int) -> int:
    """The writer that owns a device: a stable hash of its identifier (the same in every process and run), so
    each device's state has one writer and no two writers ever wait on each other's rows."""
    return zlib.crc32(identifier.strip().encode("utf-8", "surrogatepass")) % writers


class WriterPool:
    """`SMARTCITY_SAFETY_WRITERS` writer processes behind one intake API: every position goes to the writer
    that owns its device (`owner_of`); a gateway batch is split by owner and its outcomes put back in order.
    On PostgreSQL the writers commit in parallel, each on its own core."""

    def __init__(self, db, settings, profile=None, writers: int = 2):
        self.db = db
        self.writers = [WriterProcess(db, settings, profile) for _ in range(writers)]

    def _of(self, position: Position) -> WriterProcess:
        device = position.device if isinstance(position.device, str) else str(position.device)
        return self.writers[owner_of(device, len(self.writers))]

    @property
    def queued(self) -> int:
        return sum(w.queued for w in self.writers)

    @property
    def running(self) -> bool:
        return all(w.running for w in self.writers)

    @property
    def processes(self) -> list:
        return [w.process for w in self.writers]

    def start(self) -> WriterPool:
        for w in self.writers:
            w.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        for w in self.writers:
            w.stop(timeout)

    def handle(self, topic: str, data: dict) -> None:
        for w in self.writers:
            w.handle(topic, data)

    def submit(self, position: Position) -> Future:
        return self._of(position).submit(position)

    async def intake(self, position: Position) -> Ack:
        return await self._of(position).intake(position)

    def intake_sync(self, position: Position, timeout: float = 10) -> Ack:
        return self.submit(position).result(timeout)

    def _split(self, positions: list) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(positions):
            owner = owner_of(str(p.device), len(self.writers)) if isinstance(p, Position) else 0
            groups.setdefault(owner, []).append(i)
        return groups

    def submit_all(self, positions: list) -> Future:
        groups = self._split(positions)
        results: list = [None] * len(positions)
        done: Future = Future()
        remaining = [len(groups)]
        lock = threading.Lock()

        def collect(rows: list[int], part: Future) -> None:
            try:
                outcomes = part.result()
            except Exception as exc:  # noqa: BLE001 - the writer failed: each of its positions says so
                outcomes = [exc] * len(rows)
            for i, outcome in zip(rows, outcomes, strict=True):
                results[i] = outcome
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                done.set_result(results)

        if not groups:
            done.set_result(results)
        for k, rows in groups.items():
            part = self.writers[k].submit_all([positions[i] for i in rows])
            part.add_done_callback(lambda f, rows=rows: collect(rows, f))
        return done

    async def intake_all(self, positions: list) -> list:
        groups = self._split(positions)
        keys = list(groups)
        parts = await asyncio.gather(*(self.writers[k].intake_all([positions[i] for i in groups[k]]) for k in keys))
        results: list = [None] * len(positions)
        for k, part in zip(keys, parts, strict=True):
            for i, outcome in zip(groups[k], part, strict=True):
                results[i] = outcome
        return results

    def columns_future(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> asyncio.Future:
        """The batch split by owner, each part sent to its writer now; one BatchOutcome in the batch's order."""
        n = len(self.writers)
        owner = np.fromiter(
            (owner_of(d, n) if isinstance(d, str) else 0 for d in cols["device"].tolist()), dtype=np.int64, count=cols.n
        )
        errors = errors or {}
        outcome = BatchOutcome(np.zeros(cols.n, dtype=np.int8), {})
        done = asyncio.get_running_loop().create_future()
        parts = [(k, rows) for k in range(n) if len(rows := np.flatnonzero(owner == k))]
        remaining = [len(parts)]

        def collect(rows: np.ndarray, part: asyncio.Future) -> None:
            if part.cancelled() or part.exception() is not None:
                failure = WriterFailed("the safety writer failed; retry") if part.cancelled() else part.exception()
                outcome.merge(rows, BatchOutcome.refused(len(rows), failure))
            else:
                outcome.merge(rows, part.result())
            remaining[0] -= 1
            if remaining[0] == 0 and not done.done():
                done.set_result(outcome)

        if not parts:
            done.set_result(outcome)
        for k, rows in parts:
            local = {j: errors[int(r)] for j, r in enumerate(rows.tolist()) if int(r) in errors}
            self.writers[k].columns_future(cols.take(rows), local).add_done_callback(
                lambda f, rows=rows: collect(rows, f)
            )
        return done

    async def intake_columns(self, cols: Columns, errors: dict[int, SmartCityError] | None = None) -> BatchOutcome:
        return await self.columns_future(cols, errors)
