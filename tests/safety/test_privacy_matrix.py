"""The privacy matrix, on both stores: every role against every safety route, page and the live event stream.

A location (and a ward's zones, their home and school) goes to the ward's consented guardians and to the
operators of the district while an incident is open — to nobody else, administrators included, whatever
else their role may do. Every read is audited, and so is every refusal, whoever is refused (anonymous,
citizens, staff, publishers, key-holders, other guardians and operators, administrators).
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.safety import service
from smartcity.safety.engine import get_engine
from tests.conftest import LiveServer, eventually, make_key, make_settings, make_user
from tests.helpers import SSEReader
from tests.safety.helpers import HOME, SCHOOL, fix, make_world

SOS_POINT = (37.4995, 127.0585)  # in Gangnam: the incident goes to Gangnam's control room
REFUSALS = {"access_denied", "location_denied", "guardian_denied", "incident_denied"}
READS = {"read_location", "read_track", "read_alerts", "read_zones", "read_incident"}

# Who asks: the user name behind the API key (None: a system key without a user; "" for nobody at all).
CALLERS = [
    "anonymous",
    "citizen",
    "staff",
    "publisher",
    "system-key",
    "root",
    "stranger",
    "mother",
    "op-gangnam",
    "op-jongno",
]


@pytest.fixture
def world(db, tmp_path):
    w = make_world(db)
    make_user(db, "minji", "citizen")
    make_user(db, "clerk", "staff", department="11230-roads")
    make_user(db, "datahub", "publisher")
    from smartcity.app import create_app

    app = create_app(make_settings(str(db.url), tmp_path), db)
    with LiveServer(app) as server:
        engine = get_engine(db)
        start = utcnow() - timedelta(minutes=10)
        for i, point in enumerate([HOME, (37.4970, 127.0620), SCHOOL]):
            engine.intake_sync(fix(w.device, start + timedelta(minutes=i), point, battery=70.0))
        engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=30), SOS_POINT, alarm="sos"))
        with db.session() as s:
            [incident] = service.list_incidents(s, w.identity(db, w.operator_id))
        w.incident_id = incident["id"]
        w.engine, w.server = engine, server
        keys = {
            "anonymous": None,
            "system-key": make_key(db, None),
            "citizen": make_key(db, "minji"),
            "staff": make_key(db, "clerk"),
            "publisher": make_key(db, "datahub"),
        }
        for name in ("root", "stranger", "mother", "op-gangnam", "op-jongno"):
            keys[name] = make_key(db, name)
        w.keys = keys
        yield w


def _named(entry: AuditEntry, caller: str) -> bool:
    """Whether the audit entry names the caller (a system key by its name, "key:…")."""
    if caller == "system-key":
        return entry.actor.startswith("key:")
    return entry.actor == {"citizen": "minji", "staff": "clerk", "publisher": "datahub"}.get(caller, caller)


def _headers(world, caller: str) -> dict:
    key = world.keys[caller]
    return {"X-API-Key": key, "accept": "application/json"} if key else {"accept": "application/json"}


def _audit_count(db, actor: str | None = None) -> int:
    with db.session() as s:
        q = select(func.count()).select_from(AuditEntry)
        if actor is not None:
            q = q.where(AuditEntry.actor == actor)
        return s.scalar(q)


def _audits_since(db, after_id: int) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id)))


def _last_audit_id(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))


def _yesterday_in_seoul() -> str:
    return ((utcnow() + timedelta(hours=9)).date() - timedelta(days=1)).isoformat()


def _routes(w) -> dict[str, tuple[str, str, dict | None]]:
    p, i = w.person_id, w.incident_id
    zone = {"name": "Grandma", "lat": HOME[0], "lon": HOME[1], "radius_m": 60}
    return {
        "wards": ("GET", "/api/safety/wards", None),
        "position": ("GET", f"/api/safety/wards/{p}/position", None),
        "track": ("GET", f"/api/safety/wards/{p}/track", None),
        "alerts": ("GET", f"/api/safety/wards/{p}/alerts", None),
        "zones": ("GET", f"/api/safety/wards/{p}/zones", None),
        "zone-add": ("POST", f"/api/safety/wards/{p}/zones", zone),
        "incidents": ("GET", "/api/safety/incidents", None),
        "incident": ("GET", f"/api/safety/incidents/{i}", None),
        "guardian-page": ("GET", f"/safety/guardian/{p}", None),
        "guardian-replay": ("GET", f"/safety/guardian/{p}?day={_yesterday_in_seoul()}", None),
        "console-page": ("GET", f"/safety/console/{i}", None),
        "consents-page": ("GET", "/safety/consents", None),
    }


ALLOWED = {  # what each caller may open (any other route: refused, and the refusal audited)
    "mother": {"wards", "position", "track", "alerts", "zones", "zone-add", "guardian-page", "guardian-replay"},
    "op-gangnam": {"incidents", "incident", "console-page"},
    "op-jongno": {"incidents"},  # its own district's queue: empty
    "root": {"wards", "incidents", "zone-add", "consents-page"},  # no one's location; the registry (zones) they manage
    "stranger": {"wards"},  # their own (empty) list of wards
}
LOCATED = {"position", "track", "zones", "incident", "guardian-page", "guardian-replay", "console-page", "alerts"}
# The guardians' phone numbers: to the district's operators, on the open incident's view, audited; nowhere else.
GUARDIAN_PHONE = "010-1111-2222"
WITH_CONTACTS = {"incident", "console-page"}


def test_every_role_on_every_safety_route(db, world):
    w = world
    routes = _routes(w)
    failures = []
    for caller in CALLERS:
        for name, (method, path, body) in routes.items():
            before = _last_audit_id(db)
            r = httpx.request(
                method,
                f"{w.server.url}{path}",
                headers=_headers(w, caller),
                json=body,
                follow_redirects=False,
                timeout=30,
            )
            entries = _audits_since(db, before)
            actions = {e.action for e in entries}
            allowed = name in ALLOWED.get(caller, set())
            if allowed:
                if r.status_code not in (200, 201):
                    failures.append(f"{caller} {name}: {r.status_code} {r.text[:200]}")
                elif name in LOCATED and not actions & READS:
                    failures.append(f"{caller} {name}: read without an audit entry ({actions})")
                if caller == "op-gangnam" and name in WITH_CONTACTS:
                    if GUARDIAN_PHONE not in r.text or "read_contacts" not in actions:
                        failures.append(f"{caller} {name}: no guardian's phone, or read without audit ({actions})")
                elif GUARDIAN_PHONE in r.text:
                    failures.append(f"{caller} {name}: shows a guardian's phone number")
            else:
                if r.status_code not in (401, 403, 303):
                    failures.append(f"{caller} {name}: expected a refusal, got {r.status_code}")
                if str(SCHOOL[0])[:6] in r.text or str(SOS_POINT[0])[:6] in r.text or GUARDIAN_PHONE in r.text:
                    failures.append(f"{caller} {name}: a refusal shows a location or a phone number")
                if not actions & REFUSALS:
                    failures.append(f"{caller} {name}: refused without an audit entry ({actions})")
                elif not any(_named(e, caller) for e in entries if e.action in REFUSALS):
                    failures.append(f"{caller} {name}: the refusal is not audited under the caller's name")
    assert failures == []


def test_the_event_stream_follows_the_rule_whatever_the_role(db, world):
    """Administrators (every permission, events.all) get no live location; the guardian does; the district's
    operators do while the incident is open and not after; the resolved incident carries no coordinates;
    subscriptions, deliveries and refusals are audited."""
    w = world
    url = f"{w.server.url}/api/events/stream?topics=safety."
    readers = {caller: SSEReader(url, _headers(w, caller)) for caller in CALLERS}
    for reader in readers.values():
        reader.__enter__()
    try:
        w.engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=20), SOS_POINT, battery=60.0))
        eventually(lambda: readers["mother"].of("safety.position") and readers["op-gangnam"].of("safety.position"))
        with db.session() as s:
            service.resolve(s, w.identity(db, w.operator_id), w.incident_id, "found at the school gate")
        eventually(lambda: readers["op-gangnam"].of("safety.incident.resolved"))
        w.engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=10), SCHOOL, battery=59.0))
        eventually(lambda: len(readers["mother"].of("safety.position")) >= 2)
        eventually(
            lambda: (
                _audit_count(db, "root")
                and any(e.action == "event_denied" for e in _audits_since(db, 0) if e.actor == "root")
            )
        )
    finally:
        for reader in readers.values():
            reader.__exit__(None, None, None)

    def located(caller: str) -> list[dict]:
        return [e["data"] for e in readers[caller].events if e["data"].get("lat") is not None]

    assert [p["battery"] for p in readers["mother"].of("safety.position")] == [60.0, 59.0]
    # The operator saw the position while the incident was open; after it was resolved, nothing located.
    assert [p["battery"] for p in readers["op-gangnam"].of("safety.position")] == [60.0]
    [resolved] = readers["op-gangnam"].of("safety.incident.resolved")
    assert resolved["lat"] is None and resolved["lon"] is None
    for caller in ("anonymous", "citizen", "staff", "publisher", "system-key", "root", "stranger", "op-jongno"):
        assert located(caller) == [], caller
    assert readers["root"].of("safety.position") == [] and readers["root"].of("safety.alert") == []

    entries = eventually(
        lambda: [
            e for e in _audits_since(db, 0) if (e.detail or {}).get("via") == "events" or e.action == "subscribe_events"
        ]
    )
    subscribed = {e.actor for e in entries if e.action == "subscribe_events"}
    assert {"root", "mother", "op-gangnam", "stranger", "anonymous"} <= subscribed
    reads = {(e.actor, (e.detail or {}).get("as")) for e in entries if e.action == "read_live"}
    assert ("mother", "guardian") in reads and ("op-gangnam", "operator") in reads
    assert not any(e.actor == "root" for e in entries if e.action == "read_live")
    # When the stream ends, its tally: the guardian's live reads of her ward, counted. (The server notices a
    # client gone at its next write, the 15 s keep-alive at the latest.)
    tally = eventually(
        lambda: [
            e
            for e in _audits_since(db, 0)
            if e.actor == "mother" and e.action == "read_live" and (e.detail or {}).get("stream") == "closed"
        ],
        timeout=25,
        interval=0.5,
    )
    assert tally[0].detail["events"] >= 2
    assert any(e.actor == "root" and e.object_id == str(w.person_id) for e in entries if e.action == "event_denied")


def test_a_guardian_made_administrator_no_longer_follows_the_ward(db, world):
    """A ward's bond is the guardian role's own (`safety.ward`, granted with only()): an account that becomes
    an administrator keeps its consented link but reads no location, and the refusal is audited."""
    from smartcity.core.models import User

    w = world
    path = f"/api/safety/wards/{w.person_id}/position"
    assert httpx.get(f"{w.server.url}{path}", headers=_headers(w, "mother"), timeout=30).status_code == 200
    with db.session() as s:
        s.get(User, w.guardian_id).role = "admin"
    before = _last_audit_id(db)
    r = httpx.get(f"{w.server.url}{path}", headers=_headers(w, "mother"), timeout=30)
    assert r.status_code == 403 and str(SCHOOL[0])[:6] not in r.text
    refusals = [e for e in _audits_since(db, before) if e.action == "location_denied"]
    assert [(e.actor, e.object_id) for e in refusals] == [("mother", str(w.person_id))]


def test_the_safety_home_sends_each_role_where_it_works(db, tmp_path):
    """Operators to the console; guardians and administrators (who sit in no control room) to the wards."""
    from fastapi.testclient import TestClient

    from smartcity.app import create_app
    from tests.conftest import signin

    make_world(db)
    app = create_app(make_settings(str(db.url), tmp_path), db)
    for user, where in (
        ("op-gangnam", "/safety/console"),
        ("mother", "/safety/guardian"),
        ("root", "/safety/guardian"),
    ):
        with TestClient(app) as client:
            signin(client, user)
            r = client.get("/safety", follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, where), user


def test_administrators_hold_every_permission_but_a_roles_own_standing(db):
    from smartcity.core.auth import Identity

    admin, guardian, operator = Identity(role="admin"), Identity(role="guardian"), Identity(role="operator")
    assert admin.can("safety.guard") and admin.can("safety.operate") and admin.can("safety.manage")
    assert not admin.can("safety.ward") and not admin.can("safety.control_room")
    assert guardian.can("safety.ward") and not guardian.can("safety.control_room")
    assert operator.can("safety.control_room") and not operator.can("safety.ward")


def test_only_a_guardian_can_be_linked_to_a_ward_not_an_administrator(db):
    from smartcity.core.errors import InvalidInput

    w = make_world(db)
    for user_id in (w.admin_id, w.operator_id):
        with pytest.raises(InvalidInput) as refused, db.session() as s:
            service.link_guardian(s, w.person_id, user_id, "uncle", actor="test")
        assert refused.value.code == "not_a_guardian"
    with db.session() as s:
        assert service.link_guardian(s, w.person_id, w.other_guardian_id, "aunt", actor="test").id
