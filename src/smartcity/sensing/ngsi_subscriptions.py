"""NGSI-LD subscriptions: CRUD at /ngsi-ld/v1/subscriptions, matching entity writes (entities by type, id or
idPattern; watchedAttributes; q; geoQ), notifications queued in the write's own transaction (the outbox
`sensing_ngsi_notifications`) and delivered off the request path and off the scheduler's thread (the
`sensing.ngsi_notify` job wakes a sender thread, `Sender`, which posts to several endpoints at once): an HTTP POST
of {"id", "type": "Notification", "subscriptionId", "notifiedAt", "data"} to notification.endpoint.uri; a
failure is tried again after 2, 4, 8 … seconds (BACKOFF_S), and after MAX_ATTEMPTS the notification is given up
and the subscription's notification.status is "failed". `throttling` (seconds) keeps notifications apart.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.db import utcnow
from smartcity.sensing import ngsi_entities as store
from smartcity.sensing.ngsi_api import NgsiRoute, writer
from smartcity.sensing.ngsi_context import Names
from smartcity.sensing.ngsi_entities import Entity
from smartcity.sensing.ngsi_query import GeoQuery, parse_geo, parse_q
from smartcity.sensing.ngsi_store import NgsiNotification, NgsiSubscription
from smartcity.sensing.ngsi_wire import NgsiError, answer, bad_data, not_found, read_body, response_type

MAX_ATTEMPTS = 5
BACKOFF_S = 2.0
TIMEOUT_S = 5.0
LEASE_S = 4 * TIMEOUT_S  # a claimed notification is not due again before its sender is surely done with it
SENDERS = 4  # endpoints posted to at once
log = logging.getLogger(__name__)
# What the broker keeps in a subscription's body for itself: the context of its names and notifications, and
# the context its q was written in when a PATCH gave it another one.
_OWN = ("_terms", "_qterms")
router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"], route_class=NgsiRoute, include_in_schema=False)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def checked(raw: Any, sid: str | None = None) -> dict:
    """A subscription body checked (400 BadRequestData otherwise), with its id."""
    if not isinstance(raw, dict):
        raise bad_data("a subscription is a JSON object")
    if raw.get("type", "Subscription") != "Subscription":
        raise bad_data("a subscription's type is Subscription")
    sub = {k: v for k, v in raw.items() if k not in ("@context", *_OWN)}
    sub["id"] = sid or sub.get("id") or f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    store.check_id(sub["id"])
    sub["type"] = "Subscription"
    entities, watched = sub.get("entities"), sub.get("watchedAttributes")
    if entities is None and watched is None:
        raise bad_data("a subscription needs entities or watchedAttributes")
    if entities is not None:
        if not isinstance(entities, list) or not entities:
            raise bad_data("entities is a non-empty list")
        for selector in entities:
            if not isinstance(selector, dict) or not isinstance(selector.get("type"), str):
                raise bad_data("each entities selector needs a type")
            if "idPattern" in selector:
                try:
                    re.compile(selector["idPattern"])
                except (re.error, TypeError):
                    raise bad_data("idPattern is not a regular expression") from None
    if watched is not None and (
        not isinstance(watched, list) or not watched or not all(isinstance(w, str) for w in watched)
    ):
        raise bad_data("watchedAttributes is a non-empty list of attribute names")
    if "q" in sub:
        if not isinstance(sub["q"], str):
            raise bad_data("q is a string")
        parse_q(sub["q"])
    if "geoQ" in sub:
        _geo(sub["geoQ"])
    notification = sub.get("notification")
    if not isinstance(notification, dict) or not isinstance(notification.get("endpoint"), dict):
        raise bad_data("a subscription needs notification.endpoint")
    uri = notification["endpoint"].get("uri")
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        raise bad_data("notification.endpoint.uri must be an http(s) URL")
    if notification.get("format", "normalized") not in ("normalized", "keyValues", "concise"):
        raise bad_data("notification.format is normalized or keyValues")
    attrs = notification.get("attributes")
    if attrs is not None and (not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)):
        raise bad_data("notification.attributes is a list of attribute names")
    throttling = sub.get("throttling", 0)
    if isinstance(throttling, bool) or not isinstance(throttling, int | float) or throttling < 0:
        raise bad_data("throttling is a non-negative number of seconds")
    if not isinstance(sub.get("isActive", True), bool):
        raise bad_data("isActive is true or false")
    for own in ("status", "timesSent", "lastNotification", "lastSuccess", "lastFailure"):
        notification.pop(own, None)
    return sub


def _geo(geo: Any) -> GeoQuery:
    if not isinstance(geo, dict):
        raise bad_data("geoQ is an object")
    coordinates = geo.get("coordinates")
    return parse_geo(
        geo.get("georel"),
        geo.get("geometry"),
        json.dumps(coordinates) if not isinstance(coordinates, str) else coordinates,
        geo.get("geoproperty"),
    )


def _stored_names(sub: dict, names: Names, fields: Any) -> None:
    """The named fields of a checked subscription with their names as stored (the type of each entities
    selector, watchedAttributes, notification.attributes)."""
    if "entities" in fields:
        for selector in sub.get("entities") or []:
            selector["type"] = names.stored_type(selector["type"])
    if "watchedAttributes" in fields and sub.get("watchedAttributes"):
        sub["watchedAttributes"] = [names.stored(n) for n in sub["watchedAttributes"]]
    notification = sub["notification"]
    if "notification" in fields and notification.get("attributes"):
        notification["attributes"] = [names.stored(n) for n in notification["attributes"]]


def with_context(sub: dict, context: Any) -> dict:
    """A checked subscription under the request's @context: its attribute names as stored, the context kept
    (resolved, `_terms`) for testing its q and naming its notifications' attributes in the subscriber's terms."""
    names = Names(context)
    if not names.key:
        return sub
    _stored_names(sub, names, sub)
    sub["jsonldContext"] = context
    sub["_terms"] = names.key
    return sub


def patched(old: dict, fragment: dict, context: Any) -> dict:
    """A stored subscription with a PATCH's fragment merged in and checked. The fragment's names are expanded
    against the PATCH's own @context, as a creation's are; its q is kept as written, with that context, to be
    read in it (a q names attributes in terms that cannot always be rewritten into the subscription's: an IRI
    no prefix of its context covers). Notifications stay in the subscription's terms."""
    changes = {k: v for k, v in fragment.items() if k not in ("id", "type", *_OWN)}
    sub = checked({**old, **changes}, old["id"])
    names = Names(context)
    _stored_names(sub, names, changes)
    for own in _OWN:
        if own in old:
            sub[own] = old[own]
    if "q" in changes:
        sub.pop("_qterms", None)
        if names.key != old.get("_terms", ""):
            sub["_qterms"] = names.key
    return sub


def rendered(row: NgsiSubscription) -> dict:
    sub = json.loads(row.body)
    for own in _OWN:
        sub.pop(own, None)
    sub["isActive"] = row.active
    sub["status"] = "active" if row.active else "paused"
    notification = sub["notification"]
    notification["status"] = "failed" if row.failed else "ok"
    notification["timesSent"] = row.times_sent
    for name, when in (
        ("lastNotification", row.last_notification),
        ("lastSuccess", row.last_success),
        ("lastFailure", row.last_failure),
    ):
        if when is not None:
            notification[name] = _iso(when)
    return sub


# --- matching entity writes -----------------------------------------------------------------------------------


def _matches(sub: dict, e: Entity, changed: set[str]) -> bool:
    selectors = sub.get("entities")
    if selectors and not any(
        s["type"] == e.type
        and ("id" not in s or s["id"] == e.id)
        and ("idPattern" not in s or re.fullmatch(s["idPattern"], e.id))
        for s in selectors
    ):
        return False
    watched = sub.get("watchedAttributes")
    if watched and not changed & set(watched):
        return False
    terms = sub.get("_qterms", sub.get("_terms", ""))
    if sub.get("q") and not parse_q(sub["q"])(Names.of_key(terms).attrs_out(e.as_dict())):
        return False
    if sub.get("geoQ"):
        point = store.point_of(e.attrs.get("location"))
        if point is None or not _geo(sub["geoQ"]).admits(*point):
            return False
    return True


def queue(session: Session, changes: list[tuple[Entity, set[str]]], now: float | None = None) -> int:
    """Queue the notifications the entity writes call for, in the writes' transaction; how many."""
    if not changes:
        return 0
    subs = session.scalars(select(NgsiSubscription).where(NgsiSubscription.active.is_(True))).all()
    now = time.time() if now is None else now
    queued = 0
    for row in subs:
        sub = json.loads(row.body)
        hits = [e for e, changed in changes if _matches(sub, e, changed)]
        if not hits:
            continue
        if row.last_queued is not None and now - row.last_queued < sub.get("throttling", 0):
            continue
        notification = sub["notification"]
        picked = set(notification["attributes"]) | {"id", "type"} if notification.get("attributes") else None
        names = Names.of_key(sub.get("_terms", ""))
        key_values = notification.get("format") == "keyValues"
        data = [names.attrs_out(store.projected(e, picked, None, key_values)) for e in hits]
        payload = {"subscriptionId": row.id, "data": data}
        session.add(NgsiNotification(subscription_id=row.id, payload=json.dumps(payload, ensure_ascii=False), due=now))
        row.last_queued = now
        queued += 1
    return queued


# --- delivery ---------------------------------------------------------------------------------------------


def _claim(db, now: float) -> list[tuple[int, str, str, int, dict | None]]:
    """The due notifications this process takes (each pushed past a lease first, so that another process's
    sender skips it): (id, subscription, payload, attempts, endpoint)."""
    with db.session() as s:
        due = [
            (n.id, n.subscription_id, n.payload, n.attempts, n.due)
            for n in s.scalars(
                select(NgsiNotification).where(NgsiNotification.due <= now).order_by(NgsiNotification.id).limit(200)
            )
        ]
        endpoints = {
            row.id: json.loads(row.body)["notification"]["endpoint"]
            for row in s.scalars(select(NgsiSubscription).where(NgsiSubscription.id.in_({d[1] for d in due})))
        }
    claimed = []
    for nid, sid, payload, attempts, was_due in due:
        with db.session() as s:
            taken = s.execute(
                update(NgsiNotification)
                .where(NgsiNotification.id == nid, NgsiNotification.due == was_due)
                .values(due=now + LEASE_S)
            ).rowcount
        if taken:
            claimed.append((nid, sid, payload, attempts, endpoints.get(sid)))
    return claimed


def _post(http: httpx.Client, sid: str, payload: str, endpoint: dict | None) -> bool:
    if endpoint is None:
        return False
    body = {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": sid,
        "notifiedAt": _iso(utcnow()),
        "data": json.loads(payload)["data"],
    }
    try:
        answer_ = http.post(endpoint["uri"], json=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError:
        return False
    return 200 <= answer_.status_code < 300


def _outcome(db, nid: int, sid: str, attempts: int, ok: bool, now: float, counts: dict[str, int]) -> None:
    with db.session() as s:
        sub = s.get(NgsiSubscription, sid)
        note = s.get(NgsiNotification, nid)
        if sub is None or note is None:
            if note is not None:
                s.delete(note)
            return
        sub.last_notification = utcnow()
        if ok:
            s.delete(note)
            sub.times_sent += 1
            sub.last_success, sub.failed = utcnow(), False
            counts["sent"] += 1
            return
        sub.last_failure = utcnow()
        note.attempts = attempts + 1
        if note.attempts >= MAX_ATTEMPTS:
            s.delete(note)
            sub.failed = True
            counts["failed"] += 1
        else:
            note.due = now + BACKOFF_S * 2 ** (note.attempts - 1)
            counts["retried"] += 1


def deliver(db, now: float | None = None) -> dict[str, int]:
    """Send the notifications that are due, several endpoints at once (a slow one holds up only its own):
    {"sent", "retried", "failed"}."""
    now = time.time() if now is None else now
    counts = {"sent": 0, "retried": 0, "failed": 0}
    claimed = _claim(db, now)
    if not claimed:
        return counts
    lock = threading.Lock()

    def one(item: tuple[int, str, str, int, dict | None]) -> None:
        nid, sid, payload, attempts, endpoint = item
        ok = _post(http, sid, payload, endpoint)
        with lock:
            _outcome(db, nid, sid, attempts, ok, now, counts)

    with httpx.Client(timeout=TIMEOUT_S) as http, ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(one, claimed))
    return counts


class Sender:
    """The thread that delivers one store's notifications: the scheduler's job only wakes it, so an endpoint
    that is slow or down never holds up the other jobs. It ends when idle, and a wake starts it again."""

    IDLE_S = 10.0

    def __init__(self, db) -> None:
        # Weakly: the senders are kept per store in a WeakKeyDictionary, which a strong reference would pin.
        self._db = weakref.ref(db)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        with self._lock:
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="smartcity-ngsi-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._wake.wait(self.IDLE_S):
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
            self._wake.clear()
            db = self._db()
            if db is None:
                return
            try:
                deliver(db)
            except Exception:  # logged; the next wake tries again
                log.exception("NGSI-LD notification delivery failed")
            del db


_SENDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SENDERS_LOCK = threading.Lock()


def sender(db) -> Sender:
    with _SENDERS_LOCK:
        found = _SENDERS.get(db)
        if found is None:
            found = _SENDERS[db] = Sender(db)
        return found


def job(db, _settings) -> None:
    sender(db).wake()


# --- routes ----------------------------------------------------------------------------------------------------


@router.post("/subscriptions")
async def create_subscription(request: Request) -> Response:
    identity = await writer(request)
    body, context = await read_body(request)
    sub = with_context(checked(body), context)
    db = request.app.state.db

    def write() -> None:
        with db.session() as s:
            if s.get(NgsiSubscription, sub["id"]) is not None:
                raise NgsiError(409, "AlreadyExists", f"a subscription {sub['id']} exists already")
            s.add(
                NgsiSubscription(
                    id=sub["id"], body=json.dumps(sub, ensure_ascii=False), active=sub.get("isActive", True)
                )
            )
            audit.record(
                s,
                identity,
                "ngsi.subscribe",
                "ngsi_subscription",
                sub["id"][:100],
                {"uri": sub["notification"]["endpoint"]["uri"]},
            )

    await run_in_threadpool(write)
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1/subscriptions/{sub['id']}"})


@router.get("/subscriptions")
async def list_subscriptions(request: Request) -> Response:
    media = response_type(request)
    await writer(request)
    db = request.app.state.db

    def read() -> list[dict]:
        with db.session() as s:
            return [rendered(r) for r in s.scalars(select(NgsiSubscription).order_by(NgsiSubscription.id).limit(1000))]

    return answer(request, await run_in_threadpool(read), media)


@router.get("/subscriptions/{sid}")
async def get_subscription(request: Request, sid: str) -> Response:
    media = response_type(request)
    await writer(request)
    db = request.app.state.db

    def read() -> dict | None:
        with db.session() as s:
            row = s.get(NgsiSubscription, sid)
            return rendered(row) if row else None

    found = await run_in_threadpool(read)
    if found is None:
        raise not_found(f"no subscription {sid}")
    return answer(request, found, media)


@router.patch("/subscriptions/{sid}")
async def update_subscription(request: Request, sid: str) -> Response:
    identity = await writer(request)
    body, context = await read_body(request, patch=True)
    if not isinstance(body, dict) or not body:
        raise bad_data("the changes are a non-empty JSON object")
    db = request.app.state.db

    def write() -> None:
        with db.session() as s:
            row = s.get(NgsiSubscription, sid)
            if row is None:
                raise not_found(f"no subscription {sid}")
            sub = patched(json.loads(row.body), body, context)
            row.body, row.active = json.dumps(sub, ensure_ascii=False), sub.get("isActive", True)
            audit.record(
                s, identity, "ngsi.subscription_update", "ngsi_subscription", sid[:100], {"fields": sorted(body)[:20]}
            )

    await run_in_threadpool(write)
    return Response(status_code=204)


@router.delete("/subscriptions/{sid}")
async def delete_subscription(request: Request, sid: str) -> Response:
    identity = await writer(request)
    db = request.app.state.db

    def write() -> bool:
        with db.session() as s:
            row = s.get(NgsiSubscription, sid)
            if row is None:
                return False
            s.delete(row)
            s.execute(delete(NgsiNotification).where(NgsiNotification.subscription_id == sid))
            audit.record(s, identity, "ngsi.unsubscribe", "ngsi_subscription", sid[:100])
            return True

    if not await run_in_threadpool(write):
        raise not_found(f"no subscription {sid}")
    return Response(status_code=204)
