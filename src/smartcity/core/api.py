"""The core's JSON routes: health, metrics, geography, accounts, the audit log and the live event stream."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from smartcity.core import accounts, audit, params
from smartcity.core.auth import CurrentIdentity, Identity, Require
from smartcity.core.errors import InvalidInput
from smartcity.core.events import Event, may_carry_personal, personal_topic
from smartcity.core.geo import geo_index
from smartcity.core.i18n import pick
from smartcity.core.places import geocoder, place_index
from smartcity.core.web import GEOJSON_RESPONSES

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/healthz", tags=["platform"])
def healthz(request: Request) -> dict:
    """Liveness and readiness: the store answers, and other processes' events are being received."""
    db = request.app.state.db
    with db.session() as s:
        s.execute(text("SELECT 1"))
    body = {"status": "ok", "database": db.engine.dialect.name}
    # PostgreSQL: the LISTEN connection; SQLite: the event log's poller.
    body["events"] = "listening" if db.events.listening.is_set() else "connecting"
    return body


@router.get("/metrics", tags=["platform"], include_in_schema=False)
def metrics(request: Request) -> Response:
    return request.app.state.metrics.exposition()


# --- geography --------------------------------------------------------------------------------


@router.get("/api/geo/districts.geojson", tags=["geography"], response_class=Response, responses=GEOJSON_RESPONSES)
def districts_geojson(request: Request, lang: str | None = None) -> Response:
    """The city's districts as a GeoJSON FeatureCollection (what the map draws)."""
    index = geo_index(request.app.state.db)
    profile = request.app.state.profile
    body = index.districts_geojson(pick([lang], profile.languages) or profile.language)
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


class AreaOut(BaseModel):
    code: str
    name_ko: str
    name_en: str


class LocationOut(BaseModel):
    lat: float
    lon: float
    district: AreaOut
    neighbourhood: AreaOut | None


@router.get("/api/geo/locate", tags=["geography"], response_model=LocationOut)
def locate(
    request: Request,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
) -> LocationOut:
    """The district and neighbourhood of a point; 422 `outside_city` if it is not in the city."""
    loc = geo_index(request.app.state.db).locate(lat, lon)
    hood = loc.neighbourhood
    return LocationOut(
        lat=loc.lat,
        lon=loc.lon,
        district=AreaOut(code=loc.district.code, name_ko=loc.district.name_ko, name_en=loc.district.name_en),
        neighbourhood=AreaOut(code=hood.code, name_ko=hood.name_ko, name_en=hood.name_en) if hood else None,
    )


@router.get("/api/geo/neighbourhoods.geojson", tags=["geography"], response_class=Response, responses=GEOJSON_RESPONSES)
def neighbourhoods_geojson(
    request: Request,
    lang: str | None = None,
    bbox: Annotated[str | None, Query(description="west,south,east,north")] = None,
) -> Response:
    """The neighbourhoods (동) in `bbox` with a label point each: the map's street-zoom base layer."""
    profile = request.app.state.profile
    body = geo_index(request.app.state.db).neighbourhoods_geojson(
        pick([lang], profile.languages) or profile.language, params.bbox(bbox)
    )
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/api/places", tags=["geography"])
def places_search(
    request: Request,
    q: Annotated[
        str | None, Query(min_length=1, max_length=100, description="a place's name or its start, Korean or romanised")
    ] = None,
    lang: str | None = None,
    near: Annotated[str | None, Query(description="lat,lon: nearer places first")] = None,
    bbox: Annotated[str | None, Query(description="west,south,east,north: the named places inside (without q)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
) -> dict:
    """Places whose name starts with `q` (one wrong letter forgiven), best first: the map's search box; or,
    without `q`, the named places inside `bbox`: the map's label layer."""
    db, profile = request.app.state.db, request.app.state.profile
    language = pick([lang], profile.languages) or profile.language
    box = params.bbox(bbox)
    if q is None and box is None:
        raise InvalidInput("give q (a name) or bbox (west,south,east,north)", code="required")
    if q is not None:
        hits = geocoder(db).search(q, language, near=params.numbers(near, 2, "near"), limit=min(limit, 50))
    else:
        hits = place_index(db).within(box, limit)
    index = geo_index(db)
    areas = {a.code: a for a in (*index.districts, *index.neighbourhoods)}

    def where(hit) -> str:
        found = [areas.get(c) for c in (hit.neighbourhood_code, hit.district_code) if c]
        return ", ".join(a.name(language, "ko") for a in found if a and a.name_ko != hit.name_ko)

    return {"query": q, "places": [{**h.as_dict(language), "area": where(h)} for h in hits]}


@router.get("/api/places/reverse", tags=["geography"])
def places_reverse(
    request: Request,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    lang: str | None = None,
) -> dict:
    """Where a point is in words: "near <place>, <동>, <구>" and its parts."""
    profile = request.app.state.profile
    language = pick([lang], profile.languages) or profile.language
    return geocoder(request.app.state.db).reverse(lat, lon).as_dict(language)


# --- accounts ---------------------------------------------------------------------------------


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    department: str | None = None


def _user_out(user) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        department=user.department.code if user.department else None,
    )


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)
    role: str
    display_name: str = ""
    email: str | None = None
    phone: str | None = None
    department: str | None = None


@router.get("/api/me", tags=["accounts"])
def me(identity: CurrentIdentity) -> dict:
    """Who the caller is, and with which role."""
    return {
        "authenticated": identity.authenticated,
        "username": identity.username,
        "role": identity.role,
        "department": identity.department_code,
        "via": identity.via,
    }


@router.get("/api/users", tags=["accounts"], response_model=list[UserOut])
def users(
    request: Request, identity: Annotated[Identity, Depends(Require("users.manage"))], role: str | None = None
) -> list[UserOut]:
    with request.app.state.db.session() as s:
        return [_user_out(u) for u in accounts.list_users(s, role)]


@router.post("/api/users", tags=["accounts"], response_model=UserOut, status_code=201)
def create_user(
    request: Request, body: UserIn, identity: Annotated[Identity, Depends(Require("users.manage"))]
) -> UserOut:
    """Create an account (administrators). Publishes `user.created` to administrators."""
    from smartcity.core.events import publish

    with request.app.state.db.session() as s:
        user = accounts.create_user(s, accounts.NewUser(**body.model_dump()), actor=identity)
        out = _user_out(user)
        publish(
            s,
            "user.created",
            {"id": user.id, "username": user.username, "role": user.role},
            audience="users.manage",
        )
    return out


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str | None
    detail: dict | None


@router.get("/api/audit", tags=["accounts"], response_model=list[AuditOut])
def audit_log(
    request: Request,
    identity: Annotated[Identity, Depends(Require("audit.read"))],
    object_type: str | None = None,
    object_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The audit log, newest first (administrators)."""
    with request.app.state.db.session() as s:
        rows = audit.entries(s, object_type=object_type, object_id=object_id, limit=limit)
        return [
            AuditOut(
                id=r.id,
                at=r.at.isoformat(),
                actor=r.actor,
                action=r.action,
                object_type=r.object_type,
                object_id=r.object_id,
                detail=r.detail,
            )
            for r in rows
        ]


# --- live events ------------------------------------------------------------------------------

HEARTBEAT_SECONDS = 15.0
RECONNECT_MS = 1000  # a stream ended by the server's stop: how soon its client tries again (another server)


@router.get("/api/events/stream", tags=["events"])
async def event_stream(
    request: Request,
    identity: CurrentIdentity,
    topics: str = Query("", description="comma-separated topic prefixes"),
) -> StreamingResponse:
    """Server-Sent Events: every event the caller may see, filtered by topic prefix.

    Personal events (a person's location, their alerts) follow their module's rule, the one its REST reads
    follow, whatever else the caller may do; a subscription that can carry them is audited, and so is what
    it delivers and refuses (once per person and outcome, and a count when the stream ends)."""
    db = request.app.state.db
    bus = db.events
    wanted = tuple(t.strip() for t in topics.split(",") if t.strip())
    ip = request.client.host if request.client else None
    ledger = StreamLedger(db, identity, ip) if may_carry_personal(wanted) else None
    if ledger is not None:
        await run_in_threadpool(ledger.record, "subscribe_events", "event_stream", ",".join(wanted) or "*", None)
    sub = bus.subscribe(wanted, identity=identity)

    async def stream():
        try:
            yield ": connected\n\n"
            while True:
                try:
                    ev = await asyncio.wait_for(sub.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if ev is None and bus.stopping:
                    yield f"retry: {RECONNECT_MS}\n\n"
                    return
                if ev is None or (ledger is not None and ledger.failed):
                    return
                if ev.personal and (ledger is None or not await ledger.admits(ev)):
                    continue
                if ev.visible_to(identity):
                    data = json.dumps(ev.data, ensure_ascii=False)
                    yield f"id: {ev.seq}\nevent: {ev.topic}\ndata: {data}\n\n"
        finally:
            sub.close()
            if ledger is not None:
                # Not awaited: a client that goes away cancels this generator, and the tally must still be written.
                asyncio.get_running_loop().run_in_executor(None, ledger.close)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class StreamLedger:
    """One subscription's personal deliveries: decided by the module's rule, audited like reads."""

    def __init__(self, db, identity: Identity, ip: str | None):
        self.db, self.identity, self.ip = db, identity, ip
        self.counts: dict[tuple[str, str, str], int] = {}  # (action, object type, object id) → events
        self.writing: set[asyncio.Future] = set()
        self.failed = False  # an audit entry could not be written: the stream ends rather than read on unaudited

    def record(self, action: str, object_type: str, object_id, detail: dict | None) -> None:
        with self.db.session() as s:
            audit.record(s, self.identity, action, object_type, object_id, detail, ip=self.ip)

    async def admits(self, ev: Event) -> bool:
        """Whether a personal event goes out; the first of each outcome per person is audited as it goes."""
        declared = personal_topic(ev.topic)
        if not ev.visible_to(self.identity):
            # Someone else's event, skipped silently — unless the caller's permissions once let it through
            # (events.all): a refusal, and audited as one. The scope decides: no rule to ask.
            if self.identity.can("events.all"):
                self._count("event_denied", *declared.subject(ev), ev)
            return False
        try:
            verdict = await run_in_threadpool(declared.admit, self.db, self.identity, ev)
        except Exception:  # noqa: BLE001 - the rule could not be applied: nothing goes out
            log.exception("admitting %s failed", ev.topic)
            return False
        self._count(verdict.action, verdict.object_type, verdict.object_id, ev, verdict.detail)
        return verdict.allowed

    def _count(self, action: str, object_type: str, object_id, ev: Event, detail: dict | None = None) -> None:
        key = (action, object_type, str(object_id))
        first = key not in self.counts
        self.counts[key] = self.counts.get(key, 0) + 1
        if first:
            # Written beside the delivery, not before it: on SQLite the entry waits for the store's one write
            # lock, which the intake's writer holds most of the time under load (an SOS reached the console
            # 0.4 s late, waiting in this write). The stream ends if an entry cannot be written.
            detail = {"via": "events", "topic": ev.topic, **(detail or {})}
            writing = asyncio.get_running_loop().run_in_executor(
                None, self.record, action, object_type, object_id, detail
            )
            self.writing.add(writing)
            writing.add_done_callback(self._written)

    def _written(self, writing: asyncio.Future) -> None:
        self.writing.discard(writing)
        failure = None if writing.cancelled() else writing.exception()
        if writing.cancelled() or failure is not None:
            self.failed = True
            log.error("auditing a live read failed; the event stream ends", exc_info=failure)

    def close(self) -> None:
        """The whole stream's tally: how many events of each outcome about each person (beyond the first,
        audited when it happened)."""
        repeated = {key: n for key, n in self.counts.items() if n > 1}
        if not repeated:
            return
        with self.db.session() as s:
            for (action, object_type, object_id), n in repeated.items():
                audit.record(
                    s,
                    self.identity,
                    action,
                    object_type,
                    object_id,
                    {"via": "events", "events": n, "stream": "closed"},
                    ip=self.ip,
                )
