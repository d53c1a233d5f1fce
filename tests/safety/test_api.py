"""The safety JSON API on both stores: guardians' reads and the privacy rule (with audit), zone editing and
its validation (nothing stored on bad input), the control-room workflow with CSRF and with API keys."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.safety.models import Incident, Zone
from tests.conftest import make_key, signin
from tests.safety.helpers import HOME, SCHOOL, csrf, feed, fix


def _audits(db, action: str, actor: str | None = None) -> list[AuditEntry]:
    with db.session() as s:
        q = select(AuditEntry).where(AuditEntry.action == action)
        if actor:
            q = q.where(AuditEntry.actor == actor)
        return list(s.scalars(q))


def _zone_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Zone).where(Zone.active))


def _sos(w, minutes_ago: float = 0):
    at = utcnow() - timedelta(minutes=minutes_ago)
    return feed(w.engine, fix(w.device, at, (37.4995, 127.0585), alarm="sos"))


# --- guardians ------------------------------------------------------------------------------------


def test_a_guardian_reads_their_wards_position_track_and_alerts(db, client, world):
    assert client.get("/api/safety/wards").status_code == 401
    signin(client, "mother")
    wards = client.get("/api/safety/wards").json()["wards"]
    assert wards == [{"id": world.person_id, "kind": "child", "name": "Kim Haneul"}]
    pos = client.get(f"/api/safety/wards/{world.person_id}/position").json()["position"]
    assert (pos["lat"], pos["lon"]) == pytest.approx(SCHOOL)
    assert pos["battery"] == 70.0
    track = client.get(f"/api/safety/wards/{world.person_id}/track").json()["track"]
    assert [(p["lat"], p["lon"]) for p in track][0] == pytest.approx(HOME)
    assert len(track) == 4
    # A window in the past: nothing. A naive time is refused rather than guessed.
    since = (utcnow() - timedelta(days=2)).isoformat()
    until = (utcnow() - timedelta(days=1)).isoformat()
    assert (
        client.get(f"/api/safety/wards/{world.person_id}/track", params={"since": since, "until": until}).json()[
            "track"
        ]
        == []
    )
    r = client.get(f"/api/safety/wards/{world.person_id}/track", params={"since": "2024-01-01T00:00:00"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_time"
    _sos(world)
    kinds = [a["kind"] for a in client.get(f"/api/safety/wards/{world.person_id}/alerts").json()["alerts"]]
    assert kinds[0] == "sos"
    zones = client.get(f"/api/safety/wards/{world.person_id}/zones").json()["zones"]
    assert [z["name"] for z in zones] == ["School"]
    assert {e.action for e in _audits(db, "read_location", "mother")} == {"read_location"}
    assert _audits(db, "read_track", "mother") and _audits(db, "read_alerts", "mother")


def test_another_guardian_gets_403_and_each_refusal_is_audited(db, client, world):
    signin(client, "stranger")
    assert client.get("/api/safety/wards").json()["wards"] == []
    for what in ("position", "track", "alerts", "zones"):
        r = client.get(f"/api/safety/wards/{world.person_id}/{what}")
        assert r.status_code == 403, what
        assert "lat" not in r.text
    denied = _audits(db, "location_denied", "stranger") + _audits(db, "guardian_denied", "stranger")
    assert [e.object_id for e in denied] == [str(world.person_id)] * 4


def test_guardian_routes_refuse_operators_and_citizens(db, client, world):
    signin(client, "op-gangnam")
    assert client.get(f"/api/safety/wards/{world.person_id}/position").status_code == 403
    assert client.get("/api/safety/wards").status_code == 403


# --- zones ----------------------------------------------------------------------------------------


def test_zone_create_update_delete(db, client, world):
    signin(client, "mother")
    headers = csrf(client)
    url = f"/api/safety/wards/{world.person_id}/zones"
    body = {
        "name": "Home",
        "lat": HOME[0],
        "lon": HOME[1],
        "radius_m": 120,
        "schedule": [{"days": [5, 6], "start": "09:00", "end": "18:00"}],
    }
    assert client.post(url, json=body).status_code == 403  # no CSRF token: refused
    r = client.post(url, json=body, headers=headers)
    assert r.status_code == 201, r.text
    zone = r.json()
    assert zone["radius_m"] == 120 and zone["schedule"] == body["schedule"] and zone["kind"] == "safe"
    square = {
        "type": "Polygon",
        "coordinates": [
            [[127.0600, 37.4980], [127.0620, 37.4980], [127.0620, 37.4995], [127.0600, 37.4995], [127.0600, 37.4980]]
        ],
    }
    r = client.put(f"{url}/{zone['id']}", json={"name": "Grandma's", "polygon": square}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["polygon"]["type"] == "Polygon" and r.json()["radius_m"] is None
    names = [z["name"] for z in client.get(url).json()["zones"]]
    assert names == ["School", "Grandma's"]
    assert client.delete(f"{url}/{zone['id']}", headers=headers).status_code == 204
    assert [z["name"] for z in client.get(url).json()["zones"]] == ["School"]
    assert client.delete(f"{url}/{zone['id']}", headers=headers).status_code == 404
    # The engine follows: the deleted zone is no longer checked.
    assert all(z.name != "Grandma's" for z in world.engine.person_zones.get(world.person_id, []))


BAD_ZONES = {
    "radius too small": ({"name": "Tiny", "lat": HOME[0], "lon": HOME[1], "radius_m": 5}, "invalid_zone"),
    "radius not a number": ({"name": "X", "lat": HOME[0], "lon": HOME[1], "radius_m": "wide"}, "invalid"),
    "self-intersecting polygon": (
        {
            "name": "Bow tie",
            "polygon": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [127.0600, 37.4980],
                        [127.0620, 37.4995],
                        [127.0620, 37.4980],
                        [127.0600, 37.4995],
                        [127.0600, 37.4980],
                    ]
                ],
            },
        },
        "invalid_zone",
    ),
    "start after end": (
        {
            "name": "School",
            "lat": HOME[0],
            "lon": HOME[1],
            "radius_m": 100,
            "schedule": [{"days": [0], "start": "15:00", "end": "08:30"}],
        },
        "invalid_schedule",
    ),
    "day 7": (
        {
            "name": "School",
            "lat": HOME[0],
            "lon": HOME[1],
            "radius_m": 100,
            "schedule": [{"days": [7], "start": "08:00", "end": "09:00"}],
        },
        "invalid_schedule",
    ),
    "no name": ({"name": " ", "lat": HOME[0], "lon": HOME[1], "radius_m": 100}, "invalid_zone"),
    "outside the city": ({"name": "Busan", "lat": 35.18, "lon": 129.07, "radius_m": 100}, "outside_city"),
}


def test_bad_zones_are_refused_and_nothing_is_stored(db, client, world):
    signin(client, "mother")
    headers = csrf(client)
    before = _zone_count(db)
    for case, (body, code) in BAD_ZONES.items():
        r = client.post(f"/api/safety/wards/{world.person_id}/zones", json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (422, code), case
        # Updating an existing zone with the same bad values leaves it as it was.
        r = client.put(f"/api/safety/wards/{world.person_id}/zones/{world.school_zone}", json=body, headers=headers)
        assert r.status_code == 422, case
    assert _zone_count(db) == before
    with db.session() as s:
        school = s.get(Zone, world.school_zone)
        assert (school.name, school.radius_m, school.schedule) == ("School", 100, None)


def test_another_guardian_cannot_edit_zones(db, client, world):
    signin(client, "stranger")
    headers = csrf(client)
    url = f"/api/safety/wards/{world.person_id}/zones"
    before = _zone_count(db)
    r = client.post(url, json={"name": "Mine", "lat": HOME[0], "lon": HOME[1], "radius_m": 100}, headers=headers)
    assert r.status_code == 403
    assert client.delete(f"{url}/{world.school_zone}", headers=headers).status_code == 403
    assert _zone_count(db) == before
    assert len(_audits(db, "guardian_denied", "stranger")) == 2


# --- the control room -----------------------------------------------------------------------------


def test_operators_see_a_location_only_while_the_incident_is_open(db, client, world):
    from smartcity.assets import service as assets

    with db.session() as s:
        assets.create_asset(s, "cctv", 37.4996, 127.0586, name="Daechi school gate", actor="test")
        assets.create_asset(s, "cctv", 37.5100, 127.0700, name="Far away", actor="test")
    signin(client, "op-gangnam")
    assert client.get("/api/safety/incidents").json()["incidents"] == []
    _sos(world)
    queue = client.get("/api/safety/incidents").json()
    assert queue["district"] == "11230"
    [inc] = queue["incidents"]
    assert inc["kind"] == "sos" and inc["status"] == "open" and inc["lat"] is not None
    view = client.get(f"/api/safety/incidents/{inc['id']}").json()
    assert view["person"]["name"] == "Kim Haneul"
    assert view["position"]["lat"] == pytest.approx(37.4995)
    assert len(view["track"]) >= 2  # the walk to school, within the hour before the incident
    assert view["cameras"][0]["name"] == "Daechi school gate" and view["cameras"][0]["distance_m"] < 20
    assert _audits(db, "read_incident", "op-gangnam")

    headers = csrf(client)
    r = client.post(
        f"/api/safety/incidents/{inc['id']}/resolve", json={"resolution": "found at school"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["lat"] is None
    view = client.get(f"/api/safety/incidents/{inc['id']}").json()
    assert view["status"] == "resolved" and view["resolution"] == "found at school"
    assert (view["position"], view["track"], view["cameras"], view["lat"]) == (None, [], [], None)
    assert client.get("/api/safety/incidents").json()["incidents"] == []
    [done] = client.get("/api/safety/incidents", params={"active": "false"}).json()["incidents"]
    assert done["lat"] is None


def test_incident_workflow_with_the_session_and_csrf(db, client, world):
    _sos(world)
    signin(client, "op-gangnam")
    headers = csrf(client)
    [inc] = client.get("/api/safety/incidents").json()["incidents"]
    url = f"/api/safety/incidents/{inc['id']}"
    r = client.post(f"{url}/acknowledge")
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    assert client.post(f"{url}/acknowledge", headers=headers).json()["status"] == "acknowledged"
    r = client.post(f"{url}/acknowledge", headers=headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"
    r = client.post(f"{url}/dispatch", json={"agency": "110"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_agency"
    r = client.post(
        f"{url}/dispatch", json={"agency": "112", "reference": "GN-2024-77", "notes": "patrol 3"}, headers=headers
    )
    body = r.json()
    assert body["status"] == "dispatched" and body["dispatch_agency"] == "112"
    assert body["dispatch_reference"] == "GN-2024-77" and body["dispatched_at"]
    r = client.post(f"{url}/resolve", headers=headers)
    assert r.json()["status"] == "resolved"
    with db.session() as s:
        row = s.get(Incident, inc["id"])
        assert row.acknowledged_at <= row.dispatched_at <= row.resolved_at
    actions = {e.action for e in _audits(db, "acknowledged") + _audits(db, "dispatched") + _audits(db, "resolved")}
    assert actions == {"acknowledged", "dispatched", "resolved"}


def test_incident_workflow_with_an_api_key_and_district_rules(db, client, world):
    _sos(world)
    key = {"Authorization": f"Bearer {make_key(db, 'op-gangnam')}"}
    other = {"Authorization": f"Bearer {make_key(db, 'op-jongno')}"}
    guardian = {"Authorization": f"Bearer {make_key(db, 'mother')}"}
    [inc] = client.get("/api/safety/incidents", headers=key).json()["incidents"]
    url = f"/api/safety/incidents/{inc['id']}"
    assert client.get("/api/safety/incidents", headers=other).json()["incidents"] == []
    assert client.get(url, headers=other).status_code == 403
    assert client.post(f"{url}/acknowledge", headers=other).status_code == 403
    assert client.post(f"{url}/acknowledge", headers=guardian).status_code == 403
    assert _audits(db, "incident_denied", "op-jongno")
    assert client.post(f"{url}/acknowledge", headers=key).json()["status"] == "acknowledged"
    assert client.post(f"{url}/dispatch", json={"agency": "119"}, headers=key).json()["dispatch_agency"] == "119"
    assert client.post(f"{url}/resolve", json={"resolution": "ok"}, headers=key).json()["status"] == "resolved"
    assert client.get("/api/safety/incidents/999999", headers=key).status_code == 404
