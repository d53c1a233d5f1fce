"""What crosses the socket between a serving process and its safety writer process (writer.py's
`WriterProcess` ↔ writer_child.py): positions and outcomes packed as plain tuples, the errors that cross as
themselves, and `_Sender`, which frames messages to the writer without ever blocking the event loop."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from datetime import UTC, datetime
from typing import Any

from smartcity.core.errors import OutsideCity, SmartCityError, Unavailable
from smartcity.core.intake import BatchOutcome
from smartcity.safety.engine import (
    Ack,
    BadCredentials,
    FutureFix,
    IntakeError,
    InvalidPosition,
    NoConsent,
    Overloaded,
    Position,
    ProtocolNotAllowed,
    UnknownDevice,
)

log = logging.getLogger(__name__)

# Errors that cross the socket as themselves (anything else arrives as WriterFailed).
ERRORS = {
    cls.__name__: cls
    for cls in (
        IntakeError,
        InvalidPosition,
        FutureFix,
        UnknownDevice,
        NoConsent,
        Overloaded,
        OutsideCity,
        BadCredentials,
        ProtocolNotAllowed,
    )
}


class WriterFailed(Unavailable):
    """Storing failed in the writer process, or the process ended before answering: retry."""

    code = "writer_failed"


# --- what crosses the socket ----------------------------------------------------------------------
# Plain tuples: pickling a dataclass costs several times more.


# Times cross as naive UTC datetimes: pickling `datetime.timezone.utc` goes through copyreg, which for that C
# type recomputes its slot names every time (measured: a sixth of the serving process's time under MQTT load).


def _naive(at):
    """A time as it crosses: an aware one as naive UTC, anything else (a decoder's naive time) marked as such."""
    if isinstance(at, datetime) and at.tzinfo is not None:
        return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not UTC else at.replace(tzinfo=None)
    return ("naive", at)


def _aware(at):
    return at.replace(tzinfo=UTC) if at.__class__ is datetime else at[1]


def pack_position(p: Position) -> tuple:
    return (
        p.device,
        _naive(p.fix_time),
        p.lat,
        p.lon,
        p.speed,
        p.bearing,
        p.altitude,
        p.accuracy,
        p.battery,
        p.alarm,
        p.attributes,
        p.protocol,
        p.valid,
        p.credential,
    )


def unpack_position(t: tuple) -> Position:
    p = Position(*t)  # the field order of Position
    p.fix_time = _aware(p.fix_time)
    return p


def pack_outcome(outcome: Any) -> Any:
    if isinstance(outcome, BatchOutcome):
        return ("b", outcome.status, {i: pack_outcome(e) for i, e in outcome.errors.items()})
    if isinstance(outcome, Ack):
        return (
            outcome.device_id,
            _naive(outcome.fix_time),
            outcome.duplicate,
            outcome.live,
            outcome.events,
        )
    if isinstance(outcome, list):  # a unit's outcomes
        return [pack_outcome(o) for o in outcome]
    if isinstance(outcome, SmartCityError):
        return ("!", type(outcome).__name__, outcome.message, outcome.details, outcome.code)
    if isinstance(outcome, BaseException):
        return ("!", "", f"storing failed: {outcome!r}", None, None)
    return outcome  # a decoder's error passed through a unit is packed by the sender already


def unpack_outcome(t: Any) -> Any:
    if isinstance(t, list):
        return [unpack_outcome(o) for o in t]
    if t[0] == "!":
        _, name, message, details, code = t
        cls = ERRORS.get(name, WriterFailed)
        return cls(message, details=details, code=code if cls is not WriterFailed else None)
    if t[0] == "b":
        return BatchOutcome(t[1], {i: unpack_outcome(e) for i, e in t[2].items()})
    device_id, fix_time, *rest = t
    return Ack(device_id, _aware(fix_time), *rest)


class _Sender:
    """Frames to the writer, in order, never blocking the caller (the event loop): each is tried at once
    without waiting; whatever the socket cannot take yet goes to a thread that waits for it. (The writer
    may itself be waiting to hand us answers; an event loop stuck in a send would never read them.)
    Frames are those of multiprocessing's Connection, which the writer reads with."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()
        self.backlog: list[bytes] = []
        self.busy = False  # the thread holds frames taken from the backlog
        self.wake = threading.Condition(self.lock)
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="safety-writer-send", daemon=True)
        self.thread.start()

    def send(self, data: bytes) -> None:
        frame = struct.pack("!i", len(data)) + data
        with self.lock:
            if self.closed:
                raise OSError("the writer's socket is closed")
            if not self.backlog and not self.busy:
                try:
                    sent = self.sock.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                if sent == len(frame):
                    return
                frame = frame[sent:]
            self.backlog.append(frame)
            self.wake.notify()

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.backlog and not self.closed:
                    self.wake.wait()
                if not self.backlog:
                    return
                frames, self.backlog = self.backlog, []
                self.busy = True
            try:
                for frame in frames:
                    self.sock.sendall(frame)
            except OSError:
                log.error("sending to the safety writer failed")
            finally:
                with self.lock:
                    self.busy = False

    def close(self, wait: bool = True) -> None:
        """Send what is queued (when `wait`), then close; without waiting, what is queued is dropped."""
        with self.lock:
            self.closed = True
            if not wait:
                self.backlog.clear()
            self.wake.notify()
        if wait:
            self.thread.join(30)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # a send still blocked fails at once
        self.sock.close()
