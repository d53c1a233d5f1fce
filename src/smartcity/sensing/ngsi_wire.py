"""The NGSI-LD wire at the edge (ETSI GS CIM 009): ProblemDetails errors, the media types a request may send
and accept, and the JSON-LD @context a request names (Link header or the body's `@context`, never both).

Attribute names are kept as the terms a client sends; they are not expanded to IRIs (a client is expected to
use the core context, or a context that maps its terms the same way for every client). A user context named
by URL is fetched once (a short timeout) and kept per process: one that cannot be fetched is answered 503
LdContextNotAvailable, as the standard says.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
JSON, LD_JSON, GEO_JSON, MERGE_PATCH = (
    "application/json",
    "application/ld+json",
    "application/geo+json",
    "application/merge-patch+json",
)
FETCH_TIMEOUT_S = 3.0


class NgsiError(Exception):
    """An error answered as ProblemDetails: `kind` is the last part of the standard's error type URI."""

    def __init__(self, status: int, kind: str, detail: str, title: str | None = None):
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail
        self.title = title or kind

    def as_dict(self) -> dict:
        kind = self.kind if self.kind.startswith(("http", "about:")) else ERRORS + self.kind
        return {"type": kind, "title": self.title, "detail": self.detail}


def bad_data(detail: str) -> NgsiError:
    return NgsiError(400, "BadRequestData", detail)


def invalid_request(detail: str) -> NgsiError:
    return NgsiError(400, "InvalidRequest", detail)


def not_found(detail: str) -> NgsiError:
    return NgsiError(404, "ResourceNotFound", detail)


def problem(error: NgsiError) -> JSONResponse:
    return JSONResponse(error.as_dict(), status_code=error.status)


# --- media types -------------------------------------------------------------------------------------------


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def response_type(request: Request) -> str:
    """The media type of the answer from the Accept header: JSON, JSON-LD or GeoJSON; 406 for anything else."""
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return JSON
    offered = [_media(part) for part in accept.split(",")]
    for media in offered:
        if media in (JSON, LD_JSON, GEO_JSON):
            return media
        if media in ("*/*", "application/*"):
            return JSON
    raise NgsiError(406, "NotAcceptable", f"cannot answer with {accept!r}: application/json or application/ld+json")


def link_context(request: Request) -> str | None:
    """The context URL of a Link header with the JSON-LD context relation, if any."""
    link = request.headers.get("link")
    if not link:
        return None
    url, _, params = link.partition(";")
    url = url.strip()
    if not (url.startswith("<") and url.endswith(">")):
        raise bad_data('the Link header must be <url>; rel="http://www.w3.org/ns/json-ld#context"')
    if CONTEXT_REL not in params:
        return None
    return url[1:-1]


async def read_body(request: Request, *, patch: bool = False) -> tuple[Any, Any]:
    """The request's JSON body and its @context (or None): 415 for a media type NGSI-LD does not take, 400 for
    JSON that is not, for `application/ld+json` without `@context` or with a Link header too, and for
    `application/json` carrying `@context` in the body."""
    media = _media(request.headers.get("content-type", ""))
    allowed = (JSON, LD_JSON, MERGE_PATCH) if patch else (JSON, LD_JSON)
    if media not in allowed:
        raise NgsiError(415, "InvalidRequest", f"unsupported Content-Type {media!r}: {' or '.join(allowed)}")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_request(f"the body is not JSON: {exc}") from None
    link = link_context(request)
    items = body if isinstance(body, list) else [body]
    in_body = [item.get("@context") for item in items if isinstance(item, dict) and "@context" in item]
    if media == LD_JSON:
        if link is not None:
            raise bad_data("with application/ld+json the @context goes in the body, not in a Link header")
        if len(in_body) != len(items):
            raise bad_data("an application/ld+json body must carry its @context")
        context = in_body[0] if in_body else None
    else:
        if in_body:
            raise bad_data("an application/json body must not carry @context: send it in a Link header")
        context = link
    await check_context(context)
    for item in items:
        if isinstance(item, dict):
            item.pop("@context", None)
    return body, context


async def request_context(request: Request) -> str | None:
    """The context of a request without a body (a Link header), checked like a body's."""
    context = link_context(request)
    await check_context(context)
    return context


# --- contexts ----------------------------------------------------------------------------------------------

_FETCHED: dict[str, Any] = {}
_LOCK = threading.Lock()


async def check_context(context: Any) -> None:
    """Every remote context a request names must be reachable (fetched once per process); the core context is
    known without fetching."""
    for url in _urls(context):
        if url == CORE_CONTEXT or url in _FETCHED:
            continue
        if not url.startswith(("http://", "https://")):
            raise NgsiError(503, "LdContextNotAvailable", f"the @context {url} is not an http(s) URL")
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as http:
                answer = await http.get(url, headers={"Accept": "application/ld+json, application/json"})
            answer.raise_for_status()
            document = answer.json()
            if not isinstance(document, dict) or "@context" not in document:
                raise ValueError("no @context in the document")
        except (httpx.HTTPError, ValueError) as exc:
            raise NgsiError(503, "LdContextNotAvailable", f"the @context {url} cannot be fetched: {exc}") from None
        with _LOCK:
            _FETCHED[url] = document


def fetched(url: str) -> Any | None:
    """A user context document this process has fetched (check_context), or None."""
    with _LOCK:
        return _FETCHED.get(url)


def _urls(context: Any) -> list[str]:
    if context is None:
        return []
    if isinstance(context, str):
        return [context]
    if isinstance(context, list):
        return [c for c in context if isinstance(c, str)]
    if isinstance(context, dict):
        return []
    raise bad_data("@context must be a URL, an object or a list of them")


def answer(
    request: Request, body: Any, media: str, status: int = 200, headers: dict | None = None, context: Any = None
) -> Response:
    """A JSON answer: with application/ld+json each entity carries the @context its names are compacted with
    (`context`, the request's, else the core context); otherwise a Link header names it."""
    headers = dict(headers or {})
    # A user context is answered with the core context after it (the core terms always apply).
    if context is None or context == CORE_CONTEXT:
        context = CORE_CONTEXT
    else:
        context = [*(context if isinstance(context, list) else [context]), CORE_CONTEXT]
    if media == LD_JSON:
        if isinstance(body, list):
            body = [{**item, "@context": context} for item in body]
        elif isinstance(body, dict):
            body = {**body, "@context": context}
    else:
        link = context[0] if isinstance(context, list) and isinstance(context[0], str) else CORE_CONTEXT
        headers["Link"] = f'<{link}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type=media, headers=headers)
