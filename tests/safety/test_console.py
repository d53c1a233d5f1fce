"""The control room's steps in order on both stores: an unacknowledged incident closes only with a reason
(422 resolution_required, nothing stored, the refusal audited); the queue's priority order."""

import json
import re
from datetime import timedelta

from sqlalchemy import func, select

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.safety import service
from smartcity.safety.models import Incident, Person
from tests.conftest import signin
from tests.safety.helpers import HOME, csrf, feed, fix


def _sos(w):
    feed(w.engine, fix(w.device, utcnow(), (37.4995, 127.0585), alarm="sos"))


HTML = {"accept": "text/html"}


def _actions(db, incident_id: int) -> list[str]:
    with db.session() as s:
        q = select(AuditEntry.action).where(AuditEntry.object_type == "safety_incident")
        return list(s.scalars(q.where(AuditEntry.object_id == str(incident_id)).order_by(AuditEntry.id)))


def test_an_unacknowledged_incident_closes_only_with_a_reason(db, client, world):
    _sos(world)
    signin(client, "op-gangnam")
    headers = csrf(client)
    [inc] = client.get("/api/safety/incidents").json()["incidents"]
    url = f"/api/safety/incidents/{inc['id']}/resolve"
    for body in (None, {"resolution": "   "}):
        r = client.post(url, json=body, headers=headers)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "resolution_required" and error["details"][0]["field"] == "resolution"
    with db.session() as s:
        row = s.get(Incident, inc["id"])
        assert (row.status, row.resolved_at, row.resolved_by, row.resolution) == ("open", None, None, None)
    assert _actions(db, inc["id"]).count("resolve_refused") == 2
    assert "resolved" not in _actions(db, inc["id"])
    # With the reason written down it closes (a false alarm), and after acknowledgment no reason is needed.
    r = client.post(url, json={"resolution": "false alarm: pressed in a pocket"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert r.json()["resolution"] == "false alarm: pressed in a pocket"


def test_after_acknowledgment_no_reason_is_needed(db, client, world):
    _sos(world)
    signin(client, "op-gangnam")
    headers = csrf(client)
    [inc] = client.get("/api/safety/incidents").json()["incidents"]
    url = f"/api/safety/incidents/{inc['id']}"
    assert client.post(f"{url}/acknowledge", headers=headers).status_code == 200
    r = client.post(f"{url}/resolve", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert "resolve_refused" not in _actions(db, inc["id"])


def test_the_console_form_refuses_too(db, client, world):
    _sos(world)
    signin(client, "op-gangnam")
    token = csrf(client)["X-CSRF-Token"]
    [inc] = client.get("/api/safety/incidents").json()["incidents"]
    r = client.post(
        f"/safety/console/{inc['id']}/resolve",
        data={"csrf_token": token, "resolution": ""},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert r.status_code == 422
    with db.session() as s:
        assert s.get(Incident, inc["id"]).status == "open"


def test_the_queue_puts_sos_before_danger_then_the_longest_waiting(db, client, world):
    with db.session() as s:
        service.add_zone(s, service.ZoneIn("Reservoir", HOME[0], HOME[1], 60), person_id=None, kind="danger")
    with db.session() as s:  # another child in Gangnam, whose SOS came first
        other = service.add_person(s, "child", "Lee Seojun", actor="test")
        service.add_device(s, other.id, "phone-2", "osmand", actor="test")
        service.link_guardian(s, other.id, world.guardian_id, "aunt", actor="test")
        service.record_consent(s, other.id, world.guardian_id, given_by="Lee (father)", basis="form 18", actor="test")
    feed(world.engine, fix("phone-2", utcnow() - timedelta(minutes=8), (37.4990, 127.0590), alarm="sos"))
    start = utcnow() - timedelta(minutes=5)
    for i in range(3):  # the child walks into the danger zone first …
        feed(world.engine, fix(world.device, start + timedelta(seconds=10 * i), HOME))
    feed(world.engine, fix(world.device, utcnow(), (37.4995, 127.0585), alarm="sos"))  # … then presses SOS
    signin(client, "op-gangnam")
    page = client.get("/safety/console?lang=en", headers=HTML).text
    item = r'<li class="incident status-open kind-(\w+)[^>]*>\s*<a[^>]*>.*?<strong class="who">([^<]+)'
    order = re.findall(item, page, re.S)
    assert order == [("sos", "Lee Seojun"), ("sos", "Kim Haneul"), ("danger", "Kim Haneul")]
    pins = json.loads(re.search(r'id="queue-data">(.*?)</script>', page, re.S).group(1))
    [danger] = [p for p in pins if p["kind"] == "danger"]
    assert danger["zone"]["name"] == "Reservoir" and danger["zone"]["radius_m"] == 60
    assert all(p["zone"] is None for p in pins if p["kind"] == "sos")


def test_guardians_phones_and_the_description_only_while_the_incident_is_open(db, client, world):
    with db.session() as s:
        s.get(Person, world.person_id).notes = "Yellow raincoat, red backpack; answers to Haneul"
    _sos(world)
    signin(client, "op-gangnam")
    [inc] = client.get("/api/safety/incidents").json()["incidents"]
    view = client.get(f"/api/safety/incidents/{inc['id']}").json()
    assert view["guardians"] == [
        {"user_id": world.guardian_id, "name": "mother", "relation": "mother", "phone": "010-1111-2222"}
    ]
    assert view["person"]["notes"].startswith("Yellow raincoat")
    detail = client.get(f"/safety/console/{inc['id']}?part=detail&lang=en", headers=HTML).text
    assert 'href="tel:010-1111-2222"' in detail and "Yellow raincoat" in detail
    with db.session() as s:
        reads = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "read_contacts")))
    assert len(reads) == 2 and {r.actor for r in reads} == {"op-gangnam"}
    assert all(r.detail["guardians"] == [world.guardian_id] for r in reads)
    headers = csrf(client)
    r = client.post(f"/api/safety/incidents/{inc['id']}/resolve", json={"resolution": "found"}, headers=headers)
    assert r.status_code == 200
    view = client.get(f"/api/safety/incidents/{inc['id']}").json()
    assert view["guardians"] == [] and view["person"]["notes"] is None
    detail = client.get(f"/safety/console/{inc['id']}?part=detail&lang=en", headers=HTML).text
    assert "tel:" not in detail and "Yellow raincoat" not in detail
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "read_contacts")) == 2


def test_the_menu_offers_the_consent_register_to_its_managers_only(db, client, world):
    signin(client, "root")
    assert 'href="/safety/consents"' in client.get("/safety/consents?lang=en", headers=HTML).text
    client.cookies.clear()
    signin(client, "op-gangnam")
    assert 'href="/safety/consents"' not in client.get("/safety/console?lang=en", headers=HTML).text
