"""A guardian's alerts as phone notifications (web push, issue 12 item 13): the channel chosen on the web once
a phone is subscribed; an SOS marked urgent (Urgency: high, a day's TTL) and also sent by SMS; a routine alert
by push alone; each decrypted from what a push service the test runs received."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from smartcity.core.db import utcnow
from smartcity.core.errors import InvalidInput
from smartcity.core.notify import Notification, deliver_pending
from smartcity.safety import guardian
from tests.conftest import make_settings, signin
from tests.safety.helpers import SCHOOL, csrf, east_of, fix, walk_across
from tests.servers import BrowserPush


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, tmp_path, push_http_endpoints=True)


def choose(db, w, channel, cooldown_minutes=None):
    prefs = {"off": [], "channel": channel, "quiet_start": None, "quiet_end": None}
    prefs["cooldown_minutes"] = cooldown_minutes
    with db.session() as s:
        return guardian.set_alert_preferences(s, w.identity(db, w.guardian_id), w.person_id, **prefs)


def outbox(db, user_id):
    with db.session() as s:
        q = select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
        return [(n.channel, n.topic) for n in s.scalars(q)]


def test_an_sos_reaches_the_guardians_phone_as_an_urgent_notification(db, client, settings, push_service, world):
    with pytest.raises(InvalidInput) as refused:
        choose(db, world, "push")  # no phone subscribed yet
    assert refused.value.code == "no_push_subscription"

    signin(client, "mother")
    page = client.get(f"/safety/guardian/{world.person_id}", headers={"accept": "text/html"}).text
    assert 'value="push" data-push-channel disabled' in page and "data-push-subscribe" in page
    phone = BrowserPush(push_service.endpoint("mother"))
    assert client.post("/api/push/subscriptions", json=phone.subscription(), headers=csrf(client)).status_code == 201
    assert choose(db, world, "push")["channel_used"] == "push"
    before = len(outbox(db, world.guardian_id))

    world.engine.intake_sync(fix(world.device, utcnow() - timedelta(seconds=5), SCHOOL, alarm="sos"))
    sos = [m for m in outbox(db, world.guardian_id)[before:] if m[1] == "safety.sos"]
    assert sorted(sos) == [("push", "safety.sos"), ("sms", "safety.sos")]  # a push service confirms no delivery
    deliver_pending(db, settings)
    received = [(headers, json.loads(phone.decrypt(body))) for _, headers, body in push_service.received]
    [(headers, message)] = [(h, m) for h, m in received if m["tag"].startswith("safety_event:") and m["urgent"]]
    assert headers["Urgency"] == "high" and headers["TTL"] == str(24 * 3600)
    assert headers["Content-Encoding"] == "aes128gcm"
    assert all(h["Urgency"] == "normal" for h, m in received if not m["urgent"])
    assert message["title"] == "긴급: SOS" and message["urgent"] is True
    assert message["url"] == f"/safety/guardian/{world.person_id}" and "긴급 버튼" in message["body"]


def test_a_routine_alert_goes_by_push_alone_and_falls_back_when_no_phone_is_left(
    db, client, settings, push_service, world
):
    signin(client, "mother")
    phone = BrowserPush(push_service.endpoint("mother"))
    client.post("/api/push/subscriptions", json=phone.subscription(), headers=csrf(client))
    choose(db, world, "push", cooldown_minutes=0)
    before = len(outbox(db, world.guardian_id))
    for p in walk_across(world.device, start=utcnow() - timedelta(minutes=6), step_m=100):
        world.engine.intake_sync(p)
    assert outbox(db, world.guardian_id)[before:] == [("push", "safety.arrival"), ("push", "safety.departure")]
    deliver_pending(db, settings)
    assert len(push_service.received) == 2
    for _, headers, body in push_service.received:
        assert headers["Urgency"] == "normal" and headers["TTL"] == str(4 * 3600)
        assert json.loads(phone.decrypt(body))["title"] == "안심 알림"

    # The phone's subscription expires (410): it is removed, and the next alerts come by SMS.
    push_service.answers = {"/push/mother": 410}
    world.engine.intake_sync(fix(world.device, utcnow() - timedelta(minutes=4), east_of(SCHOOL, 400), alarm="sos"))
    deliver_pending(db, settings)
    assert client.get("/api/push/subscriptions").json() == []
    before = len(outbox(db, world.guardian_id))
    for p in walk_across(world.device, start=utcnow() - timedelta(minutes=3), step_m=100):
        world.engine.intake_sync(p)
    assert outbox(db, world.guardian_id)[before:] == [("sms", "safety.arrival"), ("sms", "safety.departure")]
