"""Notifications leave through real channels: an SMTP server and an HTTP SMS gateway run by the test."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from smartcity.core.notify import MAX_ATTEMPTS, Notification, deliver_pending, queue
from tests.conftest import make_settings
from tests.servers import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def sms_gateway():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("Authorization"), body))
            self.send_response(503 if body["to"] == "010-broken" else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/send", received
    server.shutdown()


def test_email_and_sms_are_delivered_and_failures_retried(db, tmp_path, smtp, sms_gateway):
    controller, inbox = smtp
    gateway_url, received = sms_gateway
    settings = make_settings(
        db.url,
        tmp_path,
        email_channel="smtp",
        smtp_port=controller.port,
        sms_gateway_url=gateway_url,
        sms_gateway_token="t0ken",
    )
    with db.session() as s:
        queue(s, "email", "minji@example.org", "신고가 접수되었습니다.", subject="[서울] 접수")
        queue(s, "sms", "010-1234-5678", "보호대상자가 안심구역을 벗어났습니다.")
        queue(s, "sms", "010-broken", "gateway will refuse this")
    assert deliver_pending(db, settings) == 2
    assert inbox.messages[0][0] == ["minji@example.org"]
    assert "[서울] 접수" in inbox.messages[0][1] or "=?utf-8?" in inbox.messages[0][1]
    assert received[0] == ("Bearer t0ken", {"to": "010-1234-5678", "text": "보호대상자가 안심구역을 벗어났습니다."})
    with db.session() as s:
        states = {n.to: (n.status, n.attempts) for n in s.scalars(select(Notification))}
        failed = s.scalar(select(Notification).where(Notification.to == "010-broken"))
        assert "503" in failed.error
    assert states == {"minji@example.org": ("sent", 1), "010-1234-5678": ("sent", 1), "010-broken": ("pending", 1)}
    # Retries back off; after MAX_ATTEMPTS the message is given up as failed.
    with db.session() as s:
        for _ in range(MAX_ATTEMPTS):
            msg = s.scalar(select(Notification).where(Notification.to == "010-broken"))
            msg.next_try_at = msg.created_at
            s.flush()
            s.commit()
            deliver_pending(db, settings)
            s.expire_all()
        assert s.scalar(select(Notification.status).where(Notification.to == "010-broken")) == "failed"


def test_a_rolled_back_change_sends_nothing(db, tmp_path):
    with pytest.raises(RuntimeError), db.session() as s:
        queue(s, "email", "minji@example.org", "never")
        raise RuntimeError("the change failed")
    assert deliver_pending(db, make_settings(db.url, tmp_path)) == 0
