"""Web push as a notification channel, against a push service the test runs (tests/servers.PushService): a
browser's subscription made through the API as a page makes it, messages sent through the outbox with a
VAPID token checked against the key pages are given, bodies decrypted with the browser's own keys, and a
subscription the push service says is gone removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from smartcity.core import notify, push
from smartcity.core.models import AuditEntry, User
from smartcity.core.notify import Notification, deliver_pending
from tests.conftest import make_settings, make_user, signin
from tests.helpers import csrf_token
from tests.servers import BrowserPush, vapid_claims


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, tmp_path, push_http_endpoints=True)


def csrf(client) -> dict:
    return {"X-CSRF-Token": csrf_token(client)}


def user_id(db, username: str) -> int:
    with db.session() as s:
        return s.scalar(select(User.id).where(User.username == username))


def audit_of(db, action: str | None = None) -> list[AuditEntry]:
    with db.session() as s:
        q = select(AuditEntry).where(AuditEntry.object_type == "push_subscription").order_by(AuditEntry.id)
        if action:
            q = q.where(AuditEntry.action == action)
        return list(s.scalars(q))


def subscriptions(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(push.PushSubscription))


def test_a_browser_subscribes_lists_and_unsubscribes_each_step_audited(db, client, push_service):
    make_user(db, "minji", "citizen")
    phone = BrowserPush(push_service.endpoint("minji-phone"))
    refused = client.post("/api/push/subscriptions", json=phone.subscription())
    assert refused.status_code == 401
    with db.session() as s:
        knocked = s.scalar(select(AuditEntry).where(AuditEntry.action == "access_denied"))
        assert knocked.object_id == "/api/push/subscriptions"

    signin(client, "minji")
    bad = phone.subscription() | {"keys": {"p256dh": phone.keys["auth"], "auth": "c2hvcnQ"}}
    r = client.post("/api/push/subscriptions", json=bad, headers=csrf(client))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_subscription"
    assert {d["field"] for d in r.json()["error"]["details"]} == {"keys.p256dh", "keys.auth"}
    r = client.post("/api/push/subscriptions", json=[1, 2], headers=csrf(client))
    assert r.status_code == 422
    assert subscriptions(db) == 0 and audit_of(db) == []

    headers = csrf(client) | {"User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131 Mobile"}
    r = client.post("/api/push/subscriptions", json=phone.subscription(), headers=headers)
    assert r.status_code == 201 and "Android 14" in r.json()["device"]
    # The same browser again (keys renewed): still one subscription.
    again = BrowserPush(phone.endpoint)
    assert client.post("/api/push/subscriptions", json=again.subscription(), headers=headers).status_code == 201
    assert subscriptions(db) == 1
    listed = client.get("/api/push/subscriptions").json()
    assert [d["device"] for d in listed] == [headers["User-Agent"]] and "endpoint" not in listed[0]
    assert [e.action for e in audit_of(db)] == ["create", "update", "read"]

    r = client.request("DELETE", "/api/push/subscriptions", json={"endpoint": phone.endpoint}, headers=csrf(client))
    assert r.status_code == 204 and subscriptions(db) == 0
    r = client.request("DELETE", "/api/push/subscriptions", json={"endpoint": phone.endpoint}, headers=csrf(client))
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_subscription"
    assert [(e.action, e.actor) for e in audit_of(db)][-1] == ("delete", "minji")


def test_plain_http_endpoints_are_refused_unless_allowed(db, tmp_path, push_service):
    make_user(db, "minji", "citizen")
    phone = BrowserPush(push_service.endpoint("p"))
    with db.session() as s:
        me = s.get(User, user_id(db, "minji"))
        from smartcity.core.auth import identity_of_user

        with pytest.raises(push.InvalidInput) as refused:
            push.subscribe(s, identity_of_user(me, "session"), phone.subscription())
        assert refused.value.details == [{"field": "endpoint", "problem": "an https URL of the browser's push service"}]


def send_to(db, settings, username: str, **kw) -> int:
    with db.session() as s:
        queued = notify.queue_push(s, user_id(db, username), **kw)
    deliver_pending(db, settings)
    return queued


def test_a_message_is_encrypted_to_the_browser_and_signed_for_the_push_service(db, client, settings, push_service):
    make_user(db, "minji", "citizen")
    signin(client, "minji")
    phone, laptop = BrowserPush(push_service.endpoint("phone")), BrowserPush(push_service.endpoint("laptop"))
    for browser in (phone, laptop):
        assert client.post("/api/push/subscriptions", json=browser.subscription(), headers=csrf(client)).is_success
    public_key = client.get("/api/push/key").json()["public_key"]

    before = int(time.time())
    queued = send_to(
        db,
        settings,
        "minji",
        title="[서울] 신고 #12: 처리 중",
        body="신고하신 '깊은 포트홀'의 상태가 '처리 중'(으)로 바뀌었습니다.",
        url="http://localhost:8000/reports/12",
        topic="report.status",
        ref="report:12",
        replaces="report-12",
    )
    assert queued == 2
    received = {path: (headers, body) for path, headers, body in push_service.received}
    assert set(received) == {"/push/phone", "/push/laptop"}
    headers, body = received["/push/phone"]
    claims = vapid_claims(headers["Authorization"], public_key)
    assert claims["aud"] == push_service.origin
    assert before < claims["exp"] <= before + 24 * 3600 + 5  # RFC 8292: at most a day ahead
    assert claims["sub"] == "mailto:smartcity@localhost"
    assert headers["Content-Encoding"] == "aes128gcm" and headers["Urgency"] == "normal"
    assert headers["TTL"] == str(notify.DEFAULT_PUSH_TTL) and headers["Topic"] == "report-12"
    message = json.loads(phone.decrypt(body))
    assert message["title"] == "[서울] 신고 #12: 처리 중" and message["url"] == "http://localhost:8000/reports/12"
    assert "깊은 포트홀" in message["body"] and message["urgent"] is False
    with pytest.raises(Exception):  # noqa: B017 - the other browser's keys cannot open it
        laptop.decrypt(body)
    with db.session() as s:
        assert {n.status for n in s.scalars(select(Notification))} == {"sent"}
        assert all(sub.last_sent_at for sub in s.scalars(select(push.PushSubscription)))


def test_an_expired_subscription_is_removed_and_a_failing_service_retried(db, client, settings, push_service):
    make_user(db, "minji", "citizen")
    signin(client, "minji")
    gone, busy = BrowserPush(push_service.endpoint("gone")), BrowserPush(push_service.endpoint("busy"))
    for browser in (gone, busy):
        client.post("/api/push/subscriptions", json=browser.subscription(), headers=csrf(client))
    push_service.answers = {"/push/gone": 410, "/push/busy": 503}
    send_to(db, settings, "minji", title="t", body="b", url="/")
    with db.session() as s:
        left = [sub.endpoint for sub in s.scalars(select(push.PushSubscription))]
        states = {n.to: (n.status, n.attempts) for n in s.scalars(select(Notification))}
        removed = s.scalar(select(AuditEntry).where(AuditEntry.actor == "job:notifications"))
    assert left == [busy.endpoint]
    assert sorted(states.values()) == [("failed", 1), ("pending", 1)]  # gone: no retry; 503: retried later
    assert removed.action == "delete" and removed.detail == {"reason": "gone", "status": 410}
    # A later message reaches only the browser still subscribed.
    push_service.answers = {}
    push_service.received.clear()
    # The 503'd message is retried 2 s later; on a slow machine that retry may fall due in this same run
    # and also reach the busy browser, so the check is on where messages went, not how many.
    assert send_to(db, settings, "minji", title="t2", body="b2", url="/") == 1
    assert {path for path, _, _ in push_service.received} == {"/push/busy"}
    with db.session() as s:
        latest = s.scalars(select(Notification).order_by(Notification.id.desc())).first()
        busy_id = s.scalar(select(push.PushSubscription.id).where(push.PushSubscription.endpoint == busy.endpoint))
    assert (latest.status, latest.to) == ("sent", str(busy_id))


def test_the_vapid_key_is_made_once_at_set_up_and_kept_out_of_the_repository(tmp_path, db_url):
    settings = make_settings(db_url, tmp_path)
    key_file = tmp_path / "var" / push.KEY_FILE
    assert not key_file.exists()
    push.ensure_vapid_key(settings)
    first = push.public_key(settings)
    assert key_file.stat().st_mode & 0o777 == 0o600
    push.ensure_vapid_key(settings)
    assert push.public_key(settings) == first and len(push.b64url(b"\x04" + b"\0" * 64)) == len(first)
    configured = make_settings(db_url, tmp_path / "other", vapid_private_key=key_file.read_text())
    assert push.public_key(configured) == first
    assert not (tmp_path / "other" / "var" / push.KEY_FILE).exists()


def test_a_message_goes_only_to_a_browser_of_its_own_account(db, client, settings, push_service):
    # A subscription's id may be taken again after it was removed (SQLite reuses the highest id): a message
    # queued for the old one must not reach the browser of whoever holds the id now.
    make_user(db, "minji", "citizen")
    make_user(db, "jun", "citizen")
    signin(client, "minji")
    phone = BrowserPush(push_service.endpoint("minji"))
    sub_id = client.post("/api/push/subscriptions", json=phone.subscription(), headers=csrf(client)).json()["id"]
    with db.session() as s:
        notify.queue(s, "push", str(sub_id), "for jun", subject="t", user_id=user_id(db, "jun"), url="/")
    deliver_pending(db, settings)
    assert push_service.received == []
    with db.session() as s:
        [message] = s.scalars(select(Notification))
        assert message.status == "failed" and message.attempts == 1


def test_smartcity_init_makes_the_vapid_key(sqlite_url, tmp_path):
    from tests.helpers import ROOT

    var = tmp_path / "var-of-init"
    env = {**os.environ, "SMARTCITY_DATABASE_URL": sqlite_url, "SMARTCITY_VAR_DIR": str(var)}
    done = subprocess.run(
        [sys.executable, "-m", "smartcity.cli", "init"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (var / push.KEY_FILE).read_text().startswith("-----BEGIN PRIVATE KEY-----")
