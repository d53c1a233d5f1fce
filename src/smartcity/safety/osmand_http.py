"""The OsmAnd port's HTTP server: HTTP/1.1 parsed by httptools straight into the protocol's batches.

Traccar Client sends one small GET per position and waits for its 200. Under uvicorn each request cost the
serving process a scope dictionary, a task, an ASGI coroutine and its send messages, about as much Python again
as the decoding and the hand-off to the writer (py-spy on the OsmAnd bench, session 23). Here a request is a
few parser callbacks: a plain Traccar Client query goes into its loop turn's `RowBatcher` batch, and when the
batch is committed one callback writes every request's answer to its connection — no coroutine per request.
Anything else (a form or JSON body, an alarm, a malformed query) goes through `osmand.receive`, the full
decoder, in a task of its own, exactly as on the web port.

HTTP kept: keep-alive (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`), `Connection: close`,
pipelined requests answered in their order, `Expect: 100-continue`, bodies by length or chunked up to
SAFETY_DEVICE_MAX_BYTES (413 and the connection closed beyond it), 405 for other methods, 400 and the
connection closed for what cannot be parsed, idle connections closed after `KEEP_ALIVE_S`, and a request
that is still arriving `REQUEST_S` after its first byte (a slowloris client dripping its headers keeps the
connection busy, not idle) refused with 408 and closed. Each refusal made here, before any decoder sees the
request, is counted through `refused(code)` (the app counts it as `smartcity_intake_total{protocol="osmand"}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httptools

from smartcity.core.intake import RowBatch, RowBatcher

log = logging.getLogger(__name__)

Answer = tuple[int, bytes, int | None]  # status, body, Retry-After seconds
KEEP_ALIVE_S = 5.0  # as uvicorn's default: an idle connection is closed after this
REQUEST_S = 10.0  # a whole request (a Traccar Client sends ~200 bytes) must have arrived within this
PIPELINE_MOST = 64  # answers a connection may owe before its reading pauses
HEAD_MOST = 64 * 1024  # bytes of request line and headers
LINGER_S = 2.0  # how long a closing connection's late data is read and dropped

REASONS = {200: b"OK", 400: b"Bad Request", 403: b"Forbidden", 405: b"Method Not Allowed", 413: b"Payload Too Large"}
REASONS |= {
    408: b"Request Timeout",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    431: b"Request Header Fields Too Large",
}
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
OK_CLOSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def response(status: int, text: bytes, wait: int | None = None, close: bool = False) -> bytes:
    """An answer as it goes on the wire: the status, a plain-text line saying why, Retry-After for a 503."""
    if status == 200 and not text and wait is None:
        return OK_CLOSE if close else OK
    head = [b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\n" % (status, REASONS.get(status, b"Error"), len(text))]
    if text:
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
    if wait is not None:
        head.append(b"retry-after: %d\r\n" % wait)
    if close:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + text


class _Owed:
    """One request's place in its connection's line of answers."""

    __slots__ = ("data", "close")

    def __init__(self, close: bool):
        self.data: bytes | None = None
        self.close = close


class OsmAndServer:
    """The port: its connections and the batches their requests wait on.

    `fast(query)` is the fast path's decoder (a batch row, or None for the full path); `batcher` gathers the
    rows; `answer(batch, index)` is a committed row's answer; `full(query, content_type, body)` answers any
    other request; `limit` is the largest body taken; `refused(code)` hears of each request refused here
    (too_large, bad_request, method_not_allowed, request_timeout)."""

    def __init__(
        self,
        fast: Callable[[str], tuple | None],
        batcher: RowBatcher,
        answer: Callable[[RowBatch, int], Answer],
        full: Callable[[bytes, str, bytes], Awaitable[Answer]],
        limit: int,
        refused: Callable[[str], None] = lambda code: None,
    ):
        self.fast, self.batcher, self.answer, self.full, self.limit = fast, batcher, answer, full, limit
        self.refused = refused
        self.connections: set[_Connection] = set()
        self.waiting: dict[RowBatch, list[tuple[_Connection, _Owed, int]]] = {}
        self.tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (OSError when it cannot)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)
        self._sweeper = loop.call_later(1, self._sweep)

    async def stop(self, timeout: float = 3) -> None:
        """Stop listening; let the answers owed be written (up to `timeout`), then close every connection."""
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        deadline = time.monotonic() + timeout
        while any(c.owed for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.transport.close()
        for task in list(self.tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout)

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            if conn.reading is not None and not conn.paused and now - conn.reading > REQUEST_S:
                conn._refuse(408, b"the request took too long to arrive", "request_timeout")
            elif not conn.owed and now - conn.active > KEEP_ALIVE_S:
                conn.transport.close()
        self._sweeper = asyncio.get_running_loop().call_later(1, self._sweep)

    def wait_for_row(self, conn: _Connection, owed: _Owed, row: tuple) -> None:
        batch, index = self.batcher.add(row)
        waiters = self.waiting.get(batch)
        if waiters is None:
            waiters = self.waiting[batch] = []
            batch.done.add_done_callback(lambda _f, batch=batch: self._settled(batch))
        waiters.append((conn, owed, index))

    def _settled(self, batch: RowBatch) -> None:
        touched = set()
        for conn, owed, index in self.waiting.pop(batch, ()):
            status, text, wait = self.answer(batch, index)
            owed.data = OK if status == 200 and not owed.close else response(status, text, wait, owed.close)
            touched.add(conn)
        for conn in touched:
            conn.write_owed()


class _Connection(asyncio.Protocol):
    """One client connection (httptools calls the `on_*` methods while `data_received` feeds it)."""

    def __init__(self, server: OsmAndServer):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.owed: deque[_Owed] = deque()
        self.active = time.monotonic()
        self.reading: float | None = None  # when the request being read began
        self.paused = False
        self.closing = False
        self._url = b""
        self._head = 0
        self._body: list[bytes] = []
        self._size = 0
        self._content_type = b""
        self._too_large = False
        self._expect = False

    # --- the transport ----------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self.closing = True

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.paused and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.active = time.monotonic()
        if self.closing:  # what a client sends after its last request (or a refused body) is read and dropped
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"upgrades are not served here", "bad_request")
        except httptools.HttpParserError:
            self._refuse(400, b"the request could not be read as HTTP/1.1", "bad_request")

    def _refuse(self, status: int, text: bytes, code: str) -> None:
        """A request that cannot be read: its answer after those owed, then the connection closes."""
        if self.closing:
            return
        self.reading = None
        self.server.refused(code)
        owed = _Owed(True)
        owed.data = response(status, text, close=True)
        self.owed.append(owed)
        self.closing = True
        self.write_owed()

    def write_owed(self) -> None:
        """Write the answers that are ready, in the requests' order; close after one that says so."""
        owed, transport = self.owed, self.transport
        if transport.is_closing():  # the client went away: nobody to answer
            owed.clear()
            return
        while owed and owed[0].data is not None:
            item = owed.popleft()
            transport.write(item.data)
            if item.close:
                owed.clear()
                self._linger()
                return
        if self.paused and len(owed) < PIPELINE_MOST // 2:
            self.paused = False
            transport.resume_reading()

    def _linger(self) -> None:
        """Close after the last answer: the sending side at once, the socket a little later. Closed with data
        unread (a client still sending a body refused as too large), the kernel would reset the connection, and
        the client could lose the answer before reading it."""
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            if self.paused:
                transport.resume_reading()
            asyncio.get_running_loop().call_later(LINGER_S, transport.close)
        else:
            transport.close()

    # --- the parser's callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.reading = time.monotonic()
        self._url = b""
        self._head = 0
        self._body = []
        self._size = 0
        self._content_type = b""
        self._too_large = False
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head += len(url)
        if self._head > HEAD_MOST:
            raise httptools.HttpParserError("the request line is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value)
        if self._head > HEAD_MOST:
            raise httptools.HttpParserError("the headers are too long")
        if len(name) == 12 and name.lower() == b"content-type":
            self._content_type = value
        elif len(name) == 14 and name.lower() == b"content-length":
            if value.strip().isdigit() and int(value) > self.server.limit:
                self._too_large = True
        elif len(name) == 6 and name.lower() == b"expect":
            self._expect = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        if self._too_large:  # said by its length: answered without reading it
            self._refuse(413, b"the body is too large", "too_large")
            raise httptools.HttpParserCallbackError("the body is too large")
        if self._expect and not self.owed:  # (with answers owed first, the client sends its body anyway)
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.server.limit:
            self._refuse(413, b"the body is too large", "too_large")
            raise httptools.HttpParserCallbackError("the body is too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reading = None
        if self.closing:
            return
        parser, server = self.parser, self.server
        owed = _Owed(not parser.should_keep_alive())
        self.owed.append(owed)
        if len(self.owed) >= PIPELINE_MOST and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if owed.close:
            self.closing = True
        method = parser.get_method()
        if method != b"GET" and method != b"POST":
            server.refused("method_not_allowed")
            owed.data = response(405, b"GET or POST", close=owed.close)
            self.write_owed()
            return
        url = self._url
        mark = url.find(b"?")
        query = url[mark + 1 :] if mark >= 0 else b""
        if query and not self._body and b"json" not in self._content_type:
            row = server.fast(query.decode("latin-1"))
            if row is not None:
                server.wait_for_row(self, owed, row)
                return
        content_type = self._content_type.decode("latin-1")
        task = asyncio.ensure_future(self._full(owed, query, content_type, b"".join(self._body)))
        server.tasks.add(task)
        task.add_done_callback(server.tasks.discard)

    async def _full(self, owed: _Owed, query: bytes, content_type: str, body: bytes) -> None:
        try:
            status, text, wait = await self.server.full(query, content_type, body)
        except Exception:  # noqa: BLE001 - the client gets a 500; the cause is logged
            log.exception("an OsmAnd request failed")
            status, text, wait = 500, b"storing the position failed", None
        owed.data = response(status, text, wait, owed.close)
        if not self.transport.is_closing():
            self.write_owed()
