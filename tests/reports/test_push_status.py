"""A citizen who turned on notifications on their phone hears of their report's status there: web push through
the outbox to a push service the test runs, decrypted with the phone's own keys (issue 12, item 13)."""

from __future__ import annotations

import json

import pytest

from smartcity.core.notify import deliver_pending
from smartcity.reports import service as S
from tests.conftest import make_settings, make_user, signin
from tests.helpers import csrf_token
from tests.reports.helpers import file_report, who
from tests.servers import BrowserPush


@pytest.fixture
def settings(db_url, tmp_path):
    return make_settings(db_url, tmp_path, push_http_endpoints=True)


def csrf(client) -> dict:
    return {"X-CSRF-Token": csrf_token(client)}


def test_the_reporter_is_told_of_a_status_change_on_the_phone_they_chose(db, client, settings, push_service):
    # No email and no phone number: before push, this reporter heard nothing.
    make_user(db, "minji", "citizen", language="ko")
    make_user(db, "roadie", "staff", department="11020-roads")
    signin(client, "minji")
    rid = file_report(db, who(db, "minji"), language="ko")
    page = client.get(f"/reports/{rid}", headers={"accept": "text/html"}).text
    assert "data-push-subscribe" in page and "이 휴대전화로 알림 받기" in page
    phone = BrowserPush(push_service.endpoint("minji"))
    assert client.post("/api/push/subscriptions", json=phone.subscription(), headers=csrf(client)).status_code == 201

    with db.session() as s:
        S.transition(s, who(db, "roadie"), rid, "acknowledged", text="곧 보수하겠습니다.")
    deliver_pending(db, settings)
    [(path, headers, body)] = push_service.received
    message = json.loads(phone.decrypt(body))
    assert message["url"].endswith(f"/reports/{rid}") and f"#{rid}" in message["title"]
    assert "곧 보수하겠습니다." in message["body"] and "http" not in message["body"]
    assert headers["Topic"] == f"report-{rid}" and headers["Urgency"] == "normal"

    # Another citizen's view of the report offers no button: only its reporter hears of it.
    make_user(db, "jun", "citizen")
    client.post("/signout", data={"csrf_token": csrf(client)["X-CSRF-Token"]})
    signin(client, "jun")
    assert "data-push-subscribe" not in client.get(f"/reports/{rid}", headers={"accept": "text/html"}).text
