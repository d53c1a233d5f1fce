"""The safety pages over HTTP on both stores: the guardian view and its parts, the 403 page (audited) for
someone else's ward, and the console's queue, detail and its no-JavaScript form workflow."""

import json
import re
from datetime import timedelta

from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from tests.conftest import signin
from tests.safety.helpers import HOME, SCHOOL, feed, fix

HTML = {"accept": "text/html"}


def _data(html: str, element_id: str):
    return json.loads(
        re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S).group(1)
    )


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_guardian_pages(db, client, world):
    r = client.get("/safety/guardian", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    signin(client, "mother")
    assert client.get("/safety", headers=HTML, follow_redirects=False).headers["location"] == "/safety/guardian"
    page = client.get("/safety/guardian?lang=ko", headers=HTML)
    assert page.status_code == 200
    assert "Kim Haneul" in page.text and "오늘의 이동 경로" in page.text and "새 안심 구역" in page.text
    data = _data(page.text, "ward-data")
    assert (data["position"]["lat"], data["position"]["lon"]) == (SCHOOL[0], SCHOOL[1])
    assert (data["track"][0]["lat"], data["track"][0]["lon"]) == HOME and len(data["track"]) == 4
    assert [z["name"] for z in data["zones"]] == ["School"]
    same = client.get(f"/safety/guardian/{world.person_id}?lang=en", headers=HTML)
    assert "Today&#39;s path" in same.text and "New safe zone" in same.text
    # The parts the live page re-fetches.
    feed(world.engine, fix(world.device, utcnow() - timedelta(seconds=5), SCHOOL, alarm="sos"))
    alerts = client.get(f"/safety/guardian/{world.person_id}?part=alerts&lang=en", headers=HTML).text
    assert "<ol" in alerts and "Emergency (SOS)" in alerts and "<html" not in alerts
    zones = client.get(f"/safety/guardian/{world.person_id}?part=zones", headers=HTML).text
    assert 'data-edit-zone="' in zones and "School" in zones


def test_someone_elses_ward_is_a_403_page_and_audited(db, client, world):
    signin(client, "stranger")
    page = client.get("/safety/guardian", headers=HTML)
    assert page.status_code == 200 and "ward-data" not in page.text  # no wards: an explanation
    for url in (f"/safety/guardian/{world.person_id}", f"/safety/guardian/{world.person_id}?part=alerts"):
        r = client.get(url, headers=HTML)
        assert r.status_code == 403 and "<html" in r.text and "ward-data" not in r.text
    with db.session() as s:
        denied = list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.actor == "stranger", AuditEntry.action.in_(["location_denied", "guardian_denied"])
                )
            )
        )
    assert len(denied) == 2 and {e.object_id for e in denied} == {str(world.person_id)}
    assert client.get("/safety/console", headers=HTML).status_code == 403  # guardians are not operators


def test_console_pages_and_the_form_workflow(db, client, world):
    signin(client, "op-gangnam")
    assert client.get("/safety", headers=HTML, follow_redirects=False).headers["location"] == "/safety/console"
    empty = client.get("/safety/console?lang=en", headers=HTML)
    assert "No open incidents." in empty.text and "Gangnam-gu" in empty.text
    assert _data(empty.text, "incident-data") is None
    feed(world.engine, fix(world.device, utcnow() - timedelta(seconds=5), SCHOOL, alarm="sos"))
    page = client.get("/safety/console?lang=en", headers=HTML)
    assert "Kim Haneul" in page.text and 'data-status="open"' in page.text
    inc = _data(page.text, "incident-data")
    assert inc["status"] == "open" and inc["position"]["lat"] == SCHOOL[0] and len(inc["track"]) == 5
    queue = client.get("/safety/console?part=queue", headers=HTML).text
    assert f'data-id="{inc["id"]}"' in queue and "<html" not in queue
    token = _token(page.text)
    url = f"/safety/console/{inc['id']}"
    # No JavaScript: plain form posts, each redirecting back to the incident.
    r = client.post(f"{url}/acknowledge", data={"csrf_token": "wrong"}, headers=HTML)
    assert r.status_code == 403
    r = client.post(f"{url}/acknowledge", data={"csrf_token": token}, headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == url
    r = client.post(
        f"{url}/dispatch",
        data={"csrf_token": token, "agency": "119", "reference": "F-9", "notes": "x"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    detail = client.get(f"{url}?part=detail&lang=en", headers=HTML).text
    assert "119 fire and rescue" in detail and "F-9" in detail and 'data-step="dispatched"' in detail
    assert f'action="{url}/acknowledge"' not in detail  # steps already taken are gone
    r = client.post(
        f"{url}/resolve", data={"csrf_token": token, "resolution": "home safe"}, headers=HTML, follow_redirects=False
    )
    assert r.status_code == 303
    done = client.get(f"{url}?lang=en", headers=HTML).text
    assert "Hidden: the incident is resolved." in done and "home safe" in done
    view = _data(done, "incident-data")
    assert (view["position"], view["track"], view["lat"]) == (None, [], None)
    assert "Recently resolved" in done
    # Another district's operator gets the 403 page.
    client.post("/signout", data={"csrf_token": token})
    signin(client, "op-jongno")
    assert client.get(url, headers=HTML).status_code == 403
