"""The control room's steps in order on both stores: an unacknowledged incident closes only with a reason
(422 resolution_required, nothing stored, the refusal audited); the queue's priority order."""


from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.safety.models import Incident
from tests.conftest import signin
from tests.safety.helpers import feed, fix
from tests.safety.test_api import _csrf


def _sos(w):
    feed(w.engine, fix(w.device, utcnow(), (37.4995, 127.0585), alarm="sos"))


def _actions(db, incident_id: int) -> list[str]:
    with db.session() as s:
        q = select(AuditEntry.action).where(AuditEntry.object_type == "safety_incident")
        return list(s.scalars(q.where(AuditEntry.object_id == str(incident_id)).order_by(AuditEntry.id)))


def test_an_unacknowledged_incident_closes_only_with_a_reason(db, client, world):
    _sos(world)
    signin(client, "op-gangnam")
    headers = _csrf(client)
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
    headers = _csrf(client)
    [inc] = client.get("/api/safety/incidents").json()["incidents"]
    url = f"/api/safety/incidents/{inc['id']}"
    assert client.post(f"{url}/acknowledge", headers=headers).status_code == 200
    r = client.post(f"{url}/resolve", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert "resolve_refused" not in _actions(db, inc["id"])


def test_the_console_form_refuses_too(db, client, world):
    _sos(world)
    signin(client, "op-gangnam")
    token = _csrf(client)["X-CSRF-Token"]
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
