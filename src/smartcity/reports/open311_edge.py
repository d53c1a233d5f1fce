"""The Open311 edge: what every /open311 request goes through before a route (query length, strict UTF-8,
CORS, HEAD without a body), each refusal in the spec's error format."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from fastapi import Request
from fastapi.responses import Response
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware

from smartcity.core.errors import InvalidInput
from smartcity.reports.open311_wire import BASE, PREFIX, respond

# --- the edge: what every /open311 request goes through before a route -------------------------------------

MAX_QUERY_BYTES = 8192  # a longer query string is refused (414) in the spec's error format


CORS_HEADERS = ["Content-Type", "Accept-Language", "Idempotency-Key", "X-API-Key", "Authorization"]


# The paths under /open311 and the methods each answers (OPTIONS names them in Allow).
PATHS = [
    (re.compile(rf"^{BASE}/(requests|servicerequestupdates)\.[a-z]+$"), "GET, HEAD, POST, OPTIONS"),
    (re.compile(rf"^({PREFIX}|{BASE})/discovery\.[a-z]+$"), "GET, HEAD, OPTIONS"),
    (re.compile(rf"^{BASE}/(services|services/[^/]+|requests/[^/]+|tokens/[^/]+)\.[a-z]+$"), "GET, HEAD, OPTIONS"),
]


def _strict_utf8(encoded: bytes, plus_is_space: bool) -> bool:
    """Whether percent-encoded text decodes as UTF-8 (Starlette would silently put U+FFFD in its place)."""
    if plus_is_space:
        encoded = encoded.replace(b"+", b" ")
    try:
        unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _edge_error(path: str, status: int, message: str) -> Response:
    fmt = "xml" if path.endswith(".xml") else "json"
    return respond(fmt, "errors", [{"code": status, "description": message}], status_code=status)


class Open311Edge:
    """HTTP hygiene for /open311, in front of the routes: the path, query string and url-encoded body must
    be UTF-8 (400), the query string at most MAX_QUERY_BYTES (414), both in the spec's error format; OPTIONS
    answers 204 with the path's methods; CORS for the origins in SMARTCITY_OPEN311_CORS_ORIGINS (reads need
    no credentials, so no cookies are allowed across origins); HEAD is answered as GET, without the body."""

    def __init__(self, app, origins: list[str]):
        self.app = app
        self.origins = origins
        self.inner = self._cors(app)

    def _cors(self, app):
        if not self.origins:
            return app
        return CORSMiddleware(
            app,
            allow_origins=self.origins,
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=CORS_HEADERS,
            max_age=3600,
        )

    async def _refuse(self, scope, receive, send, status: int, message: str) -> None:
        # With the CORS headers too: a browser app is shown the error rather than a CORS failure.
        path = scope["path"]
        await self._cors(_edge_error(path, status, message))(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        query: bytes = scope.get("query_string", b"")
        if len(query) > MAX_QUERY_BYTES:
            await self._refuse(scope, receive, send, 414, f"the query string is longer than {MAX_QUERY_BYTES} bytes")
            return
        if not _strict_utf8(scope.get("raw_path") or path.encode(), False) or not _strict_utf8(query, True):
            await self._refuse(scope, receive, send, 400, "the request's path or query string is not valid UTF-8")
            return
        headers = Headers(scope=scope)
        if method == "OPTIONS" and not (headers.get("origin") and headers.get("access-control-request-method")):
            allow = next((methods for pattern, methods in PATHS if pattern.match(path)), None)
            if allow is None:
                await self._refuse(scope, receive, send, 404, "not found")
            else:
                await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
            return
        if method == "POST" and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body, receive = await _whole_body(receive)
            if not all(_strict_utf8(part, True) for part in body.split(b"&")):
                await self._refuse(scope, receive, send, 400, "the request body is not valid UTF-8")
                return
        elif method == "POST" and headers.get("content-type", "").startswith("multipart/form-data"):
            receive = _TextPartsCheck.around(scope, headers["content-type"], receive)
        if method == "HEAD":
            send = _without_body(send)
        await self.inner(scope, receive, send)


class _TextPartsCheck:
    """Reads a multipart body beside the app as it streams by (files are not kept) and notes a text field
    that is not UTF-8, which Starlette would read as Latin-1 without a word. The handlers read the whole
    form before they act and then call `refuse_bad_text`, so such a request stores nothing."""

    def __init__(self, boundary: bytes):
        self.invalid: str | None = None
        self._header, self._value, self._disposition = b"", b"", b""
        self._text: bytearray | None = None
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    @classmethod
    def around(cls, scope, content_type: str, receive):
        boundary = parse_options_header(content_type)[1].get(b"boundary")
        if not boundary:
            return receive  # Starlette refuses it in our format
        check = cls(boundary)
        scope.setdefault("state", {})["open311_text_check"] = check

        async def checked():
            message = await receive()
            if message["type"] == "http.request" and check.parser is not None:
                try:
                    check.parser.write(message.get("body", b""))
                except Exception:  # noqa: BLE001 - a malformed body is Starlette's to refuse
                    check.parser = None
            return message

        return checked

    def _begin(self) -> None:
        self._disposition, self._text = b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        options = parse_options_header(self._disposition)[1]
        self._name = options.get(b"name", b"")
        self._text = None if b"filename" in options else bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._text is not None and len(self._text) < 1_000_000:
            self._text.extend(data[start:end])

    def _end(self) -> None:
        if self._text is not None and self.invalid is None:
            try:
                bytes(self._text).decode("utf-8")
                self._name.decode("utf-8")
            except UnicodeDecodeError:
                self.invalid = self._name.decode("utf-8", "replace")[:40] or "?"


def refuse_bad_text(request: Request) -> None:
    """InvalidInput if a multipart text field of this request was not UTF-8 (see `_TextPartsCheck`)."""
    check = request.scope.get("state", {}).get("open311_text_check")
    if check is not None and check.invalid is not None:
        raise InvalidInput(f"the field {check.invalid!r} is not valid UTF-8", code="invalid_body")


async def _whole_body(receive):
    """The body read whole, and a `receive` that hands it to the app again."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _without_body(send):
    async def head_send(message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_send
