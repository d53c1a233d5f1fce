"""The OsmAnd port's own HTTP server (osmand_http.py), spoken to over raw sockets: pipelined requests answered in
their order, Connection: close and HTTP/1.0, Expect: 100-continue, bodies over the limit, unreadable requests,
idle connections."""

from __future__ import annotations

import select
import socket
import time
from datetime import timedelta

import httpx

from smartcity.core.db import Database, utcnow
from smartcity.safety import osmand_http
from smartcity.safety.settings import SafetySettings
from tests.conftest import LiveServer, make_settings
from tests.safety.helpers import make_world, rows, traccar_query
from tests.servers import free_port


def _answers(sock: socket.socket, n: int | None = None, timeout: float = 10) -> tuple[list[tuple[int, bytes]], bool]:
    """Read HTTP answers (status, body) until `n` arrived or the server closed; and whether it closed."""
    sock.settimeout(timeout)
    data, out, closed = b"", [], False
    while n is None or len(out) < n:
        while True:  # parse what is complete
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = data[:head_end].decode("latin-1").split("\r\n")
            status = int(head[0].split()[1])
            headers = dict(line.lower().split(": ", 1) for line in head[1:])
            length = int(headers.get("content-length", "0"))
            if len(data) < head_end + 4 + length:
                break
            if status != 100:
                out.append((status, data[head_end + 4 : head_end + 4 + length]))
            data = data[head_end + 4 + length :]
        if n is not None and len(out) >= n:
            break
        chunk = sock.recv(65536)
        if not chunk:
            closed = True
            break
        data += chunk
    return out, closed


def _get(query: str, extra: str = "", version: str = "1.1") -> bytes:
    return f"GET /?{query} HTTP/{version}\r\nHost: phone\r\n{extra}\r\n".encode()


def _serve(sqlite_url, tmp_path):
    from smartcity.app import create_app

    db = Database(sqlite_url)
    w = make_world(db)
    port = free_port()
    app = create_app(make_settings(sqlite_url, tmp_path, osmand_port=port), db)
    return db, w, port, app


def test_pipelined_requests_are_answered_in_order_and_connection_close_ends_the_connection(sqlite_url, tmp_path):
    db, w, port, app = _serve(sqlite_url, tmp_path)
    at = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    try:
        with LiveServer(app), socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                _get(traccar_query(w.device, at))
                + _get(traccar_query(w.device, at + timedelta(seconds=1), batt="150.0"))  # refused
                + _get(f"id={w.device}&lat=x&lon=1")  # the full decoder's 400
                + _get(traccar_query(w.device, at + timedelta(seconds=2)), "Connection: close\r\n")
                + _get(traccar_query(w.device, at + timedelta(seconds=3)))  # after the close: never read
            )
            answers, closed = _answers(sock)
            assert [status for status, _ in answers] == [200, 400, 400, 200]
            assert answers[1][1] == b"batt: must be between 0 and 100"
            assert closed
            assert len(rows(db)) == 2
    finally:
        db.dispose()


def test_http_1_0_is_closed_after_its_answer_unless_kept_alive(sqlite_url, tmp_path):
    db, w, port, app = _serve(sqlite_url, tmp_path)
    at = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    try:
        with LiveServer(app):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(_get(traccar_query(w.device, at), version="1.0"))
                assert _answers(sock) == ([(200, b"")], True)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(_get(traccar_query(w.device, at), "Connection: keep-alive\r\n", version="1.0"))
                assert _answers(sock, 1) == ([(200, b"")], False)  # a replay: 200, stored once
            assert len(rows(db)) == 1
    finally:
        db.dispose()


def test_a_form_body_after_100_continue_is_stored(sqlite_url, tmp_path):
    db, w, port, app = _serve(sqlite_url, tmp_path)
    body = traccar_query(w.device, (utcnow() - timedelta(minutes=5)).replace(microsecond=0)).encode()
    try:
        with LiveServer(app), socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(10)
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: phone\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n")
            sock.sendall(body)
            assert _answers(sock, 1)[0] == [(200, b"")]
            assert len(rows(db)) == 1
    finally:
        db.dispose()


def test_too_large_or_unreadable_requests_are_refused_and_the_connection_closed(sqlite_url, tmp_path):
    db, w, port, app = _serve(sqlite_url, tmp_path)
    limit = app.state.settings.of(SafetySettings).device_max_bytes
    try:
        with LiveServer(app):
            with socket.create_connection(("127.0.0.1", port)) as sock:  # said by its length
                sock.sendall(b"POST / HTTP/1.1\r\nHost: phone\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
                assert _answers(sock) == ([(413, b"the body is too large")], True)
            with socket.create_connection(("127.0.0.1", port)) as sock:  # found out while reading it, chunked
                sock.sendall(b"POST / HTTP/1.1\r\nHost: phone\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"a" * 65536
                try:
                    for _ in range(limit // len(chunk) + 2):
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:  # the server may close while we still send
                    pass
                assert _answers(sock) == ([(413, b"the body is too large")], True)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                answers, closed = _answers(sock)
                assert [status for status, _ in answers] == [400] and closed
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"DELETE /?id=x HTTP/1.1\r\nHost: phone\r\n\r\n")
                assert _answers(sock, 1)[0] == [(405, b"GET or POST")]
            assert rows(db) == []
    finally:
        db.dispose()


def test_an_idle_connection_is_closed(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setattr(osmand_http, "KEEP_ALIVE_S", 0.2)
    db, w, port, app = _serve(sqlite_url, tmp_path)
    try:
        with LiveServer(app), socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /?id=")  # half a request, then nothing
            started = time.monotonic()
            assert _answers(sock, timeout=5) == ([], True)
            assert time.monotonic() - started < 4
    finally:
        db.dispose()


def test_a_client_dripping_its_headers_is_refused_with_408_and_closed(sqlite_url, tmp_path, monkeypatch):
    # Each byte arrives well within the idle timeout, so only a limit on the whole request can stop it.
    monkeypatch.setattr(osmand_http, "KEEP_ALIVE_S", 1.0)
    monkeypatch.setattr(osmand_http, "REQUEST_S", 0.5)
    db, w, port, app = _serve(sqlite_url, tmp_path)
    head = _get(traccar_query(w.device, utcnow() - timedelta(minutes=5)), "X-Slow: " + "a" * 200 + "\r\n")
    try:
        with LiveServer(app) as server, socket.create_connection(("127.0.0.1", port)) as sock:
            started, sent, answered = time.monotonic(), 0, False
            try:
                while not answered and sent < len(head) - 1 and time.monotonic() - started < 8:
                    sock.sendall(head[sent : sent + 1])
                    sent += 1
                    answered = bool(select.select([sock], [], [], 0.1)[0])
            except OSError:  # the server closed while we were still dripping
                answered = True
            assert answered and time.monotonic() - started < 6, f"the server let {sent} bytes drip"
            assert _answers(sock, timeout=5) == ([(408, b"the request took too long to arrive")], True)
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'smartcity_intake_total{protocol="osmand",result="request_timeout"} 1.0' in metrics
            assert rows(db) == []
    finally:
        db.dispose()


def test_the_ports_requests_are_counted_in_metrics(sqlite_url, tmp_path):
    db, w, port, app = _serve(sqlite_url, tmp_path)
    limit = app.state.settings.of(SafetySettings).device_max_bytes
    at = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    try:
        with LiveServer(app) as server:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    _get(traccar_query(w.device, at))  # the fast path
                    + _get(traccar_query("nobody", at))  # the fast path, refused by the writer
                    + _get(f"id={w.device}&lat=x&lon=1")  # the full decoder
                    + b"DELETE /?id=x HTTP/1.1\r\nHost: phone\r\n\r\n"
                )
                assert [s for s, _ in _answers(sock, 4)[0]] == [200, 400, 400, 405]
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: phone\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
                assert _answers(sock)[0] == [(413, b"the body is too large")]
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                assert [s for s, _ in _answers(sock)[0]] == [400]
            text = httpx.get(f"{server.url}/metrics").text
        for result in (
            "stored",
            "unknown_device",
            "invalid_position",
            "method_not_allowed",
            "too_large",
            "bad_request",
        ):
            counted = [line for line in text.splitlines() if line.startswith("smartcity_intake_total")]
            assert f'smartcity_intake_total{{protocol="osmand",result="{result}"}} 1.0' in counted, counted
    finally:
        db.dispose()
