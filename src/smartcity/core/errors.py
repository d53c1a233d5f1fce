"""The platform's one error hierarchy. Services raise these; each edge maps them once.

    SmartCityError              base; carries a machine code, a message and optional details
    ├── InvalidInput  (400/422) the request or file is malformed or breaks a rule
    │   └── OutsideCity          a coordinate is not inside the city
    ├── NotAuthenticated (401)  no valid session, token or key
    ├── PermissionDenied (403)  signed in, but not allowed
    ├── NotFound        (404)
    ├── Conflict        (409)  duplicate or stale state
    ├── TooLarge        (413)
    ├── TooManyRequests (429)  slow down (sign-in attempts, rate limits)
    └── Unavailable     (503)  overloaded or a dependency is down; retry later

The JSON API answers `{"error": {"code", "message", "details"}}`; pages render an error page;
protocol adapters (Open311, OsmAnd) translate to their own formats.

A message with values is written as its English template (an N_() msgid with {placeholders}) and its
`params`: `NotFound(N_("no report {id}"), params={"id": 12})`. `message` is the filled-in English text (what
the API and the protocols answer); a page looks the template up in the catalogues and fills it in the
reader's language (core.web.error_text), whole sentences with Korean particles settled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SmartCityError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: Any = None, params: Mapping[str, Any] | None = None
    ):
        self.template = message
        self.params = dict(params or {})
        self.message = message.format(**self.params) if self.params else message
        super().__init__(self.message)
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(SmartCityError):
    status = 422
    code = "invalid"


class OutsideCity(InvalidInput):
    code = "outside_city"


class NotAuthenticated(SmartCityError):
    status = 401
    code = "not_authenticated"


class PermissionDenied(SmartCityError):
    status = 403
    code = "forbidden"


class NotFound(SmartCityError):
    status = 404
    code = "not_found"


class Conflict(SmartCityError):
    status = 409
    code = "conflict"


class TooLarge(SmartCityError):
    status = 413
    code = "too_large"


class TooManyRequests(SmartCityError):
    status = 429
    code = "too_many_requests"


class Unavailable(SmartCityError):
    status = 503
    code = "unavailable"
