"""The guardian's own choices and views, on both stores: which alerts come and how (kinds, channel, quiet
hours, their cool-down), the ward's emergency and its progress, "last seen", and a past day's path
(issue 12, item 4)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput, PermissionDenied
from smartcity.core.models import AuditEntry
from smartcity.core.notify import Notification
from smartcity.safety import guardian, service
from smartcity.safety.models import Device, GuardianLink, HeldAlert, SafetyEvent
from tests.conftest import signin
from tests.safety.helpers import SCHOOL, east_of, feed, fix, make_world, walk_across

HTML = {"accept": "text/html"}
SEOUL_OFFSET = timedelta(hours=9)  # the default city profile's time zone (no daylight saving)


def messages(db, user_id: int, topic: str | None = None) -> list[Notification]:
    with db.session() as s:
        q = select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
        if topic:
            q = q.where(Notification.topic == topic)
        return list(s.scalars(q))


def quiet_around_now(minutes: int = 60) -> tuple[str, str]:
    """Quiet hours from `minutes` before now to `minutes` after, in Seoul time (may run past midnight)."""
    local = utcnow() + SEOUL_OFFSET
    return (local - timedelta(minutes=minutes)).strftime("%H:%M"), (local + timedelta(minutes=minutes)).strftime(
        "%H:%M"
    )


def set_prefs(db, w, user_id: int | None = None, **prefs):
    prefs = {"off": [], "channel": None, "quiet_start": None, "quiet_end": None, "cooldown_minutes": None} | prefs
    with db.session() as s:
        return guardian.set_alert_preferences(s, w.identity(db, user_id or w.guardian_id), w.person_id, **prefs)


def test_quiet_hours_hold_a_departure_until_they_end_but_an_sos_goes_at_once(db, engine, settings):
    w = make_world(db)
    start, end = quiet_around_now()
    set_prefs(db, w, quiet_start=start, quiet_end=end)
    for p in walk_across(w.device):
        engine.intake_sync(p)
    assert messages(db, w.guardian_id) == []  # arrival and departure held, not sent
    with db.session() as s:
        assert [h.text for h in s.scalars(select(HeldAlert).order_by(HeldAlert.id))] == [
            "Kim Haneul 님이 School에 도착했습니다.",
            "Kim Haneul 님이 School을 떠났습니다.",  # 스쿨을: read as Korean reads it
        ]
    engine.intake_sync(fix(w.device, utcnow() - timedelta(seconds=5), SCHOOL, alarm="sos"))
    [sos] = messages(db, w.guardian_id)
    assert sos.topic == "safety.sos" and sos.channel == "sms" and "긴급 버튼" in sos.body
    # Still quiet: the job holds them; after the quiet hours, both come in one message, once.
    assert service.send_alert_digests(db, settings, now=utcnow()) == 0
    later = utcnow() + timedelta(minutes=90)
    assert service.send_alert_digests(db, settings, now=later) == 1
    assert service.send_alert_digests(db, settings, now=later) == 0
    [held] = messages(db, w.guardian_id, "safety.held")
    assert held.body.startswith("방해 금지 시간 동안 보류된 알림:")
    assert "도착했습니다" in held.body and "떠났습니다" in held.body and held.to == "010-1111-2222"


def test_a_danger_zone_alert_is_never_held(db, engine):
    w = make_world(db)
    start, end = quiet_around_now()
    set_prefs(db, w, quiet_start=start, quiet_end=end)
    with db.session() as s:
        service.add_zone(
            s, service.ZoneIn("Construction", SCHOOL[0], SCHOOL[1], 80), person_id=None, kind="danger", actor="test"
        )
    for p in walk_across(w.device):
        engine.intake_sync(p)
    assert [m.topic for m in messages(db, w.guardian_id)] == ["safety.danger"]


def test_a_kind_turned_off_is_not_sent_and_sos_cannot_be_turned_off(db, engine):
    w = make_world(db)
    set_prefs(db, w, off=["arrival"], channel="sms")
    with pytest.raises(InvalidInput) as refused:
        set_prefs(db, w, off=["sos", "departure"], quiet_start="22:00", quiet_end="07:00")
    assert refused.value.code == "sos_always_on"
    with db.session() as s:  # nothing of the refused change was stored
        link = s.scalars(select(GuardianLink).where(GuardianLink.user_id == w.guardian_id)).one()
        assert (link.alerts_off, link.quiet_start) == (["arrival"], None)
    for p in walk_across(w.device):
        engine.intake_sync(p)
    assert [m.topic for m in messages(db, w.guardian_id)] == ["safety.departure"]
    with db.session() as s:  # the history keeps every event
        assert sorted(e.kind for e in s.scalars(select(SafetyEvent))) == ["arrival", "departure"]


def test_each_guardian_has_their_own_channel_and_cool_down(db, engine):
    w = make_world(db)
    with db.session() as s:
        service.record_consent(s, w.person_id, w.other_guardian_id, given_by="Kim Minji", basis="form 18", actor="t")
    set_prefs(db, w, cooldown_minutes=0, channel="sms")
    set_prefs(db, w, w.other_guardian_id, channel="email")
    outside = east_of(SCHOOL, 400)
    points = [outside] * 2 + ([SCHOOL] * 2 + [outside] * 2) * 3  # three arrivals, three departures
    start = utcnow() - timedelta(minutes=30)
    for i, p in enumerate(points):
        engine.intake_sync(fix(w.device, start + timedelta(seconds=10 * i), p))
    mine = messages(db, w.guardian_id, "safety.arrival")
    theirs = messages(db, w.other_guardian_id, "safety.arrival")
    assert len(mine) == 3 and len(theirs) == 1  # no cool-down for her; the default 10 minutes for him
    assert {m.channel for m in theirs} == {"email"} and theirs[0].to == "stranger@example.org"
    with pytest.raises(InvalidInput) as refused:
        set_prefs(db, w, w.other_guardian_id, channel="sms")  # he has no phone number
    assert refused.value.code == "no_address"


def test_only_the_wards_own_guardian_sets_preferences_and_a_refusal_is_audited(db, engine):
    w = make_world(db)
    with pytest.raises(PermissionDenied):
        set_prefs(db, w, w.other_guardian_id, off=["arrival"])
    with db.session() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "guardian_denied")).all()
        assert [(e.actor, e.object_id) for e in denied] == [("stranger", str(w.person_id))]
        assert s.scalars(select(GuardianLink.alerts_off)).all() == [None]


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_preferences_form_stores_the_choices_or_says_why_not(db, client, world):
    signin(client, "mother")
    url = f"/safety/guardian/{world.person_id}"
    page = client.get(f"{url}?lang=en", headers=HTML).text
    assert "SOS alerts always come: they cannot be turned off." in page
    assert re.search(r'value="sos"\s+checked disabled', page)
    form = {
        "csrf_token": _token(page),
        "kinds": ["departure", "danger", "absence"],
        "channel": "sms",
        "quiet_start": "22:00",
        "quiet_end": "07:00",
        "cooldown_minutes": "30",
    }
    r = client.post(f"{url}/alerts", data=form, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    with db.session() as s:
        link = s.scalars(select(GuardianLink).where(GuardianLink.user_id == world.guardian_id)).one()
        assert link.alerts_off == ["arrival", "low_battery", "silent", "outside_city"]
        assert (link.alert_channel, link.quiet_start, link.quiet_end, link.cooldown_minutes) == (
            "sms",
            "22:00",
            "07:00",
            30,
        )
    again = client.get(f"{url}?lang=ko", headers=HTML).text
    assert 'value="22:00"' in again and 'value="30"' in again and "SOS 알림은 항상 옵니다" in again
    # Half a quiet-hours window: refused in the page's language, nothing stored.
    bad = client.post(f"{url}/alerts?lang=en", data=form | {"quiet_end": "", "cooldown_minutes": "5"}, headers=HTML)
    assert bad.status_code == 422 and "Quiet hours need a start and an end time." in bad.text
    with db.session() as s:
        assert (
            s.scalars(select(GuardianLink.cooldown_minutes).where(GuardianLink.user_id == world.guardian_id)).one()
            == 30
        )
    # Another guardian posting to this ward is refused, and audited.
    client.post("/signout", data={"csrf_token": _token(again)})
    signin(client, "stranger")
    token = _token(client.get("/safety/guardian", headers=HTML).text)
    r = client.post(f"{url}/alerts", data=form | {"csrf_token": token}, headers=HTML)
    assert r.status_code == 403
    with db.session() as s:
        assert s.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "guardian_denied", AuditEntry.actor == "stranger")
        ).all() == ["stranger"]


def test_last_seen_and_an_sos_shown_urgent_with_its_progress(db, client, world):
    signin(client, "mother")
    url = f"/safety/guardian/{world.person_id}"
    page = client.get(f"{url}?lang=en", headers=HTML).text
    assert re.search(r'id="last-seen" data-minutes="7" data-now="[^"]*">7 min ago<', page)  # the fix of 7 minutes ago
    assert 'id="urgent"' not in page  # no emergency: no urgent banner
    feed(world.engine, fix(world.device, utcnow() - timedelta(seconds=5), SCHOOL, alarm="sos"))
    page = client.get(f"{url}?lang=ko", headers=HTML).text
    assert re.search(r'id="last-seen" data-minutes="0" data-now="방금">방금<', page)
    urgent = re.search(r'<section class="card urgent" id="urgent" role="alert">(.*?)</section>', page, re.S).group(1)
    assert page.index('id="urgent"') < page.index('class="ward-tabs"')  # top of the page
    assert re.findall(r'data-step="(\w+)"', urgent) == ["open"]
    with db.session() as s:
        [inc] = service.list_incidents(s, world.identity(db, world.operator_id), active=True)
        service.acknowledge(s, world.identity(db, world.operator_id), inc["id"])
        service.dispatch(s, world.identity(db, world.operator_id), inc["id"], "112", "GN-1", "")
    page = client.get(f"{url}?lang=en", headers=HTML).text
    urgent = re.search(r'id="urgent" role="alert">(.*?)</section>', page, re.S).group(1)
    assert re.findall(r'data-step="(\w+)"', urgent) == ["open", "acknowledged", "dispatched"]
    assert "SOS: Dispatched" in urgent
    with db.session() as s:
        service.resolve(s, world.identity(db, world.operator_id), inc["id"], "home safe")
    page = client.get(f"{url}?lang=en", headers=HTML).text
    assert 'id="urgent"' not in page  # resolved: no longer urgent, still in the list with its steps
    card = re.search(r'id="incidents-card">(.*?)</section>', page, re.S).group(1)
    assert re.findall(r'data-step="(\w+)"', card) == ["open", "acknowledged", "dispatched", "resolved"]
    # No coordinates: the SOS fix's (SCHOOL) in any rounding. The steps' times are left out first: a time's
    # seconds once read "37.508955" (CI, session 24).
    shown = re.sub(r"<time[^>]*>[^<]*</time>", "", card)
    assert not re.search(r"37\.50|127\.05", shown), shown
    with db.session() as s:
        reads = s.scalars(select(AuditEntry).where(AuditEntry.action == "read_incidents")).all()
        assert reads and {e.actor for e in reads} == {"mother"}


def test_a_past_days_path_is_replayed_within_the_retention_period(db, client, world):
    # Two days back: the world's live fixes (minutes old) can fall on yesterday's date just after midnight.
    yesterday = (utcnow() + SEOUL_OFFSET).date() - timedelta(days=2)
    noon = datetime(yesterday.year, yesterday.month, yesterday.day, 3, 0, tzinfo=utcnow().tzinfo)  # 12:00 Seoul
    for i in range(3):
        feed(world.engine, fix(world.device, noon + timedelta(minutes=i), east_of(SCHOOL, 50 * i)))
    signin(client, "mother")
    url = f"/safety/guardian/{world.person_id}"
    page = client.get(f"{url}?day={yesterday.isoformat()}&lang=en", headers=HTML).text
    fixes = re.search(r'<ol class="fixes" id="replay-fixes">(.*?)</ol>', page, re.S).group(1)
    assert re.findall(r"<time[^>]*>([^<]+)</time>", fixes) == [f"{yesterday.isoformat()} 12:0{i}:00" for i in range(3)]
    assert f"Path of {yesterday.isoformat()}" in page
    data = re.search(r'<script type="application/json" id="ward-data">(.*?)</script>', page, re.S).group(1)
    assert '"replay": "' + yesterday.isoformat() in data and data.count('"fix_time"') >= 3
    today = client.get(url, headers=HTML).text  # today's path has none of yesterday's fixes
    assert "replay-fixes" not in today
    with db.session() as s:
        read = s.scalars(select(AuditEntry).where(AuditEntry.action == "read_track").order_by(AuditEntry.id)).all()
        assert any((e.detail or {}).get("points") == 3 for e in read)
    old = (utcnow() + SEOUL_OFFSET).date() - timedelta(days=400)
    assert client.get(f"{url}?day={old.isoformat()}", headers=HTML).status_code == 422
    assert client.get(f"{url}?day=yesterday", headers=HTML).status_code == 422


def test_a_guardian_adds_a_device_and_sees_its_password_once(db, client, world):
    signin(client, "mother")
    url = f"/safety/guardian/{world.person_id}"
    token = _token(client.get(url, headers=HTML).text)
    form = {"csrf_token": token, "identifier": "haneul-watch", "protocol": "owntracks", "name": "Watch"}
    r = client.post(f"{url}/devices?lang=en", data=form, headers=HTML)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="issued-secret">([^<]+)</code>', r.text).group(1)
    with db.session() as s:
        [device] = s.scalars(select(Device).where(Device.identifier == "haneul-watch")).all()
        assert (device.person_id, device.protocol, device.name) == (world.person_id, "owntracks", "Watch")
        assert device.secret_hash and secret not in device.secret_hash  # only its hash is kept
        created = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "create", AuditEntry.object_type == "safety_device")
        ).all()
        assert created[-1].actor == "mother"
    assert secret not in client.get(url, headers=HTML).text  # shown once
    # The same identifier again: refused with the reason, nothing added.
    again = client.post(f"{url}/devices?lang=en", data=form, headers=HTML)
    assert again.status_code == 422 and "already registered" in again.text
    with db.session() as s:
        assert len(s.scalars(select(Device).where(Device.person_id == world.person_id)).all()) == 2
    # Someone else's ward: refused and audited, nothing added.
    client.post("/signout", data={"csrf_token": token})
    signin(client, "stranger")
    token = _token(client.get("/safety/guardian", headers=HTML).text)
    r = client.post(f"{url}/devices", data=form | {"csrf_token": token, "identifier": "x-1"}, headers=HTML)
    assert r.status_code == 403
    with db.session() as s:
        assert s.scalars(select(Device).where(Device.identifier == "x-1")).all() == []
        assert s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "guardian_denied")).all() == ["stranger"]


def test_the_service_records_and_withdraws_consent_on_the_web(db, client, world):
    signin(client, "mother")  # a guardian may not keep the register
    assert client.get("/safety/consents", headers=HTML).status_code == 403
    with db.session() as s:
        assert s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "access_denied")).all() == ["mother"]
    client.post("/signout", data={"csrf_token": _token(client.get("/safety/guardian", headers=HTML).text)})
    signin(client, "root")
    page = client.get("/safety/consents?lang=en", headers=HTML)
    assert page.status_code == 200 and "Kim Haneul" in page.text and "form 17" in page.text
    token = _token(page.text)
    form = {"csrf_token": token, "person_id": str(world.person_id), "username": "stranger", "given_by": "Kim Minji"}
    bad = client.post("/safety/consents?lang=en", data=form | {"basis": " "}, headers=HTML)
    assert bad.status_code == 422 and "who gave it and on what basis" in bad.text
    r = client.post("/safety/consents", data=form | {"basis": "form 18"}, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    with db.session() as s:
        assert service.guardian_ids(s, world.person_id) == sorted([world.guardian_id, world.other_guardian_id])
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "consent", AuditEntry.actor == "root")).all()
        assert entry.detail["basis"] == "form 18"
    r = client.post(
        f"/safety/consents/{world.person_id}/{world.other_guardian_id}/withdraw",
        data={"csrf_token": token},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        assert service.guardian_ids(s, world.person_id) == [world.guardian_id]  # the mother's consent stays
    page = client.get("/safety/consents?lang=ko", headers=HTML).text
    assert re.search(rf'data-user="{world.other_guardian_id}" data-consented="no"', page) and "철회됨" in page


def test_held_alerts_go_with_the_history_and_are_never_sent(db, engine, settings):
    w = make_world(db)
    start, end = quiet_around_now()
    set_prefs(db, w, quiet_start=start, quiet_end=end)
    for p in walk_across(w.device):
        engine.intake_sync(p)
    with db.session() as s:
        assert len(s.scalars(select(HeldAlert)).all()) == 2
        service.withdraw_as_guardian(s, w.identity(db, w.guardian_id), w.person_id, with_history=True)
    with db.session() as s:
        assert s.scalars(select(HeldAlert)).all() == []
    assert service.send_alert_digests(db, settings, now=utcnow() + timedelta(minutes=90)) == 0
    assert messages(db, w.guardian_id) == []
