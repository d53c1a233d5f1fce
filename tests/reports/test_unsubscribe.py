"""Unsubscribing from area mail: a GET never unsubscribes (mail scanners fetch every link in a message), the
confirm page's button and RFC 8058's one-click POST do; the mail carries List-Unsubscribe and
List-Unsubscribe-Post, checked on the message a real SMTP server received."""

from __future__ import annotations

import email
import email.policy
import re
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from smartcity.core.auth import ANONYMOUS
from smartcity.core.models import AuditEntry
from smartcity.core.notify import deliver_pending
from smartcity.reports import service as S
from smartcity.reports.models import Subscription
from tests.conftest import make_settings
from tests.reports.helpers import CITY_HALL
from tests.servers import free_port

PUBLIC = "https://city.example"
AREA = "126.97,37.56,126.99,37.57"  # around City Hall


@pytest.fixture
def inbox():
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, received
    controller.stop()


@pytest.fixture
def settings(db_url, tmp_path, inbox):
    return make_settings(db_url, tmp_path, email_channel="smtp", smtp_port=inbox[0], reports_public_url=PUBLIC)


def file_and_mail(app, received: list[bytes]) -> email.message.EmailMessage | None:
    """File a report at City Hall, deliver the outbox to the SMTP server, the area mail it got (if any)."""
    with app.state.db.session() as s:
        S.create_report(
            s,
            ANONYMOUS,
            S.NewReport(
                category="roads-pothole",
                lat=CITY_HALL[0],
                lon=CITY_HALL[1],
                title="A pothole",
                attributes={"size": "small"},
            ),
        )
    before = len(received)
    deliver_pending(app.state.db, app.state.settings)
    mails = [email.message_from_bytes(m, policy=email.policy.default) for m in received[before:]]
    return next((m for m in mails if m["To"] == "w@example.org"), None)


def subscriptions(app) -> int:
    with app.state.db.session() as s:
        return s.scalar(select(func.count()).select_from(Subscription))


def test_the_mail_offers_one_click_unsubscribe_and_a_get_never_unsubscribes(client, app, inbox):
    _, received = inbox
    assert client.post("/api/reports/subscriptions", json={"email": "w@example.org", "bbox": AREA}).status_code == 201
    mail = file_and_mail(app, received)
    assert mail is not None
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = re.fullmatch(
        r"<(https://city\.example/api/reports/subscriptions/[^/>]+/delete)>", mail["List-Unsubscribe"]
    ).group(1)
    body = mail.get_content()
    link = re.search(r"https://city\.example/reports/unsubscribe/\S+", body).group(0)
    assert "/delete" not in body  # the link in the text goes to the confirm page

    # What a mail scanner does: follow both addresses with GET. Nothing is unsubscribed.
    r = client.get(urlsplit(one_click).path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == urlsplit(link).path
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and f'action="{urlsplit(link).path}"' in page.text
    assert subscriptions(app) == 1
    assert file_and_mail(app, received) is not None  # still mailed

    # What a mail client's one-click button does (RFC 8058 §3.2): a POST with that body, no cookies.
    r = client.post(
        urlsplit(one_click).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json() == {"unsubscribed": True}
    assert subscriptions(app) == 0
    assert file_and_mail(app, received) is None
    with app.state.db.session() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "unsubscribe", AuditEntry.object_type == "report_subscription")
            )
            == 1
        )
    again = client.post(
        urlsplit(one_click).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 404


def test_the_confirm_page_button_unsubscribes(client, app, inbox):
    _, received = inbox
    client.post("/api/reports/subscriptions", json={"email": "w@example.org", "bbox": AREA})
    link = urlsplit(
        re.search(r"https://city\.example/reports/unsubscribe/\S+", file_and_mail(app, received).get_content()).group(0)
    ).path
    page = client.get(link)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert subscriptions(app) == 1
    assert client.post(link, data={"csrf_token": csrf}).status_code == 200
    assert subscriptions(app) == 0
