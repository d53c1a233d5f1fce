"""Web push in Debian's chromium: push.js asks for permission only when "notify me on this phone" is pressed,
subscribes with the platform's VAPID key and posts the subscription; the service worker (/sw.js with
_sw_push.js) shows a pushed message as a notification. Chromium's own push service is out of reach (no
internet), so the page's PushManager answers with a subscription whose keys the test holds, at a push
service the test runs; the message then goes through the outbox to that service and is decrypted."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from smartcity.core import push
from smartcity.core.db import Database
from smartcity.core.notify import deliver_pending
from smartcity.reports import service as S
from tests.conftest import LiveServer, eventually, make_settings, make_user
from tests.helpers import BROWSER_TIMEOUT, browser_signin
from tests.reports.helpers import file_report, who
from tests.servers import BrowserPush, PushService

pytestmark = pytest.mark.browser

# The page's PushManager, as the browser's would answer once its push service had registered it; the calls
# to ask permission are counted, to show none is made before the button is pressed.
STUB = """
window.__asked = 0;
const ask = Notification.requestPermission.bind(Notification);
Notification.requestPermission = (...a) => { window.__asked += 1; return ask(...a); };
PushManager.prototype.getSubscription = async function () { return null; };
PushManager.prototype.subscribe = async function (options) {
  window.__serverKey = Array.from(new Uint8Array(options.applicationServerKey));
  window.__userVisibleOnly = options.userVisibleOnly;
  const json = SUBSCRIPTION;
  return { endpoint: json.endpoint, options, toJSON: () => json };
};
"""


@pytest.fixture
def push_service():
    service = PushService().start()
    yield service
    service.stop()


@pytest.fixture
def server(sqlite_url, tmp_path):
    from smartcity.app import create_app

    db = Database(sqlite_url)
    settings = make_settings(sqlite_url, tmp_path, push_http_endpoints=True)
    with LiveServer(create_app(settings, db)) as live:
        live.db, live.settings = db, settings
        yield live
    db.dispose()


def test_the_reporter_turns_on_notifications_and_the_phone_shows_one(browser, server, push_service):
    db = server.db
    make_user(db, "minji", "citizen", language="ko")
    make_user(db, "roadie", "staff", department="11020-roads")
    rid = file_report(db, who(db, "minji"), language="ko")
    phone = BrowserPush(push_service.endpoint("minji-phone"))
    context = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844}, permissions=["notifications"])
    context.add_init_script(STUB.replace("SUBSCRIPTION", json.dumps(phone.subscription())))
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT)
    try:
        browser_signin(page, server, "minji", f"/reports/{rid}")
        button = page.locator("[data-push-subscribe]")
        button.wait_for(state="visible")
        assert page.evaluate("window.__asked") == 0  # nothing asked on load
        button.click()
        page.get_by_text("신고 상태가 바뀌면 이 휴대전화로 알려 드립니다.").wait_for()
        assert page.evaluate("window.__asked") == 1 and page.evaluate("window.__userVisibleOnly") is True
        key = base64.urlsafe_b64encode(bytes(page.evaluate("window.__serverKey"))).rstrip(b"=").decode()
        assert key == push.public_key(server.settings)
        with db.session() as s:
            [sub] = s.scalars(select(push.PushSubscription))
            assert (sub.endpoint, sub.user_id, sub.p256dh) == (
                phone.endpoint,
                who(db, "minji").user_id,
                phone.keys["p256dh"],
            )
            assert "Chrome" in sub.device

        # A status change goes through the outbox to the push service, encrypted to the phone's keys...
        with db.session() as s:
            S.transition(s, who(db, "roadie"), rid, "acknowledged", text="곧 보수하겠습니다.")
        deliver_pending(db, server.settings)
        [(_, _, body)] = push_service.received
        message = phone.decrypt(body).decode()

        # ...and the service worker shows what the push service would hand it (DevTools delivers it).
        cdp = context.new_cdp_session(page)
        registrations: list[dict] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
        registration = eventually(lambda: [r for r in registrations if not r["isDeleted"]])[0]
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": server.url, "registrationId": registration["registrationId"], "data": message},
        )
        notifications = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
            .map((n) => ({ title: n.title, body: n.body, url: n.data.url }))"""
        shown = eventually(lambda: page.evaluate(notifications))
        assert shown == [
            {
                "title": json.loads(message)["title"],
                "body": json.loads(message)["body"],
                "url": json.loads(message)["url"],
            }
        ]
        assert f"#{rid}" in shown[0]["title"] and "곧 보수하겠습니다." in shown[0]["body"]
    finally:
        context.close()


def test_a_guardian_turns_on_notifications_then_chooses_them_as_the_alert_channel(browser, server, push_service):
    from smartcity.safety.models import GuardianLink
    from tests.safety.helpers import make_world

    db = server.db
    world = make_world(db)
    phone = BrowserPush(push_service.endpoint("mother-phone"))
    context = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844}, permissions=["notifications"])
    context.add_init_script(STUB.replace("SUBSCRIPTION", json.dumps(phone.subscription())))
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT)
    try:
        browser_signin(page, server, "mother", f"/safety/guardian/{world.person_id}")
        choice = page.locator('input[name=channel][value="push"]')
        assert choice.is_disabled()  # no phone of hers receives notifications yet
        page.get_by_role("button", name="이 휴대전화에서 알림 켜기").click()
        page.get_by_text("이 휴대전화의 알림이 켜졌습니다.").wait_for()
        assert choice.is_enabled() and page.evaluate("window.__asked") == 1
        choice.check()
        page.get_by_role("button", name="알림 설정 저장").click()
        page.wait_for_url(f"**/safety/guardian/{world.person_id}*")
        assert page.locator('input[name=channel][value="push"]').is_checked()
        with db.session() as s:
            link = s.scalar(select(GuardianLink).where(GuardianLink.user_id == world.guardian_id))
            assert link.alert_channel == "push"
    finally:
        context.close()
