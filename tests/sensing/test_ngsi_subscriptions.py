"""NGSI-LD subscriptions: CRUD with the standard's codes, notifications matching entities/watchedAttributes/q/
geoQ delivered by the `sensing.ngsi_notify` job to a real HTTP server the test starts (a free port), throttling,
and an endpoint that refuses: tried again with back-off, then the subscription's notification status failed."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from smartcity.sensing.ngsi_subscriptions import MAX_ATTEMPTS, deliver
from tests.conftest import make_settings
from tests.servers import free_port

ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def send(client, key, method, path, body=None):
    return client.request(
        method,
        f"/ngsi-ld/v1{path}",
        content=None if body is None else json.dumps(body),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )


def ap(n: int, clients: int, lon: float = 126.978, lat: float = 37.5665) -> dict:
    return {
        "id": f"urn:ngsi-ld:Streetlight:s{n}",
        "type": "Streetlight",
        "clients": {"type": "Property", "value": clients},
        "status": {"type": "Property", "value": "up"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


def test_subscription_crud(sender_key, client, receiver):
    sub = {
        "id": "urn:ngsi-ld:Subscription:busy",
        "type": "Subscription",
        "entities": [{"type": "Streetlight"}],
        "notification": {"endpoint": {"uri": receiver.url}},
    }
    assert send(client, sender_key, "POST", "/subscriptions", sub).status_code == 201
    again = send(client, sender_key, "POST", "/subscriptions", sub)
    assert (again.status_code, again.json()["type"]) == (409, ERR + "AlreadyExists")
    got = send(client, sender_key, "GET", "/subscriptions/urn:ngsi-ld:Subscription:busy").json()
    assert (got["status"], got["notification"]["timesSent"], got["notification"]["status"]) == ("active", 0, "ok")
    assert (
        send(
            client, sender_key, "PATCH", "/subscriptions/urn:ngsi-ld:Subscription:busy", {"isActive": False}
        ).status_code
        == 204
    )
    assert send(client, sender_key, "GET", "/subscriptions").json()[0]["status"] == "paused"
    for bad in (
        {"type": "Subscription", "notification": {"endpoint": {"uri": receiver.url}}},
        {
            "type": "Subscription",
            "entities": [{"type": "Streetlight"}],
            "notification": {"endpoint": {"uri": "ftp://x"}},
        },
        {
            "type": "Subscription",
            "entities": [{"type": "Streetlight"}],
            "q": "clients>",
            "notification": {"endpoint": {"uri": receiver.url}},
        },
    ):
        r = send(client, sender_key, "POST", "/subscriptions", bad)
        assert (r.status_code, r.json()["type"]) == (400, ERR + "BadRequestData"), bad
    assert client.get("/ngsi-ld/v1/subscriptions").status_code == 401
    assert send(client, sender_key, "DELETE", "/subscriptions/urn:ngsi-ld:Subscription:busy").status_code == 204
    assert send(client, sender_key, "GET", "/subscriptions/urn:ngsi-ld:Subscription:busy").status_code == 404


def test_matching_writes_are_notified_by_the_job(sender_key, client, receiver):
    sub = {
        "id": "urn:ngsi-ld:Subscription:crowded",
        "type": "Subscription",
        "entities": [{"type": "Streetlight", "idPattern": "urn:ngsi-ld:Streetlight:s[12]"}],
        "watchedAttributes": ["clients"],
        "q": "clients>40",
        "geoQ": {"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": [126.978, 37.5665]},
        "notification": {"attributes": ["clients"], "format": "keyValues", "endpoint": {"uri": receiver.url}},
    }
    assert send(client, sender_key, "POST", "/subscriptions", sub).status_code == 201
    entities = [ap(1, 50), ap(2, 10), ap(3, 90), ap(4, 70, lon=127.1)]
    assert send(client, sender_key, "POST", "/entityOperations/create", entities).status_code == 201
    assert (
        send(client, sender_key, "POST", "/entities/urn:ngsi-ld:Streetlight:s2/attrs", {"status": "down"}).status_code
        == 204
    )
    [first] = receiver.wait(1)
    body = first["body"]
    assert first["type"].startswith("application/json")
    assert (body["type"], body["subscriptionId"]) == ("Notification", "urn:ngsi-ld:Subscription:crowded")
    assert body["notifiedAt"].endswith("Z")
    assert body["data"] == [{"id": "urn:ngsi-ld:Streetlight:s1", "type": "Streetlight", "clients": 50}]

    assert (
        send(client, sender_key, "PATCH", "/entities/urn:ngsi-ld:Streetlight:s2/attrs", {"clients": 45}).status_code
        == 204
    )
    second = receiver.wait(2)[1]["body"]
    assert second["data"] == [{"id": "urn:ngsi-ld:Streetlight:s2", "type": "Streetlight", "clients": 45}]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = send(client, sender_key, "GET", "/subscriptions/urn:ngsi-ld:Subscription:crowded").json()[
            "notification"
        ]
        if state["timesSent"] == 2:
            break
        time.sleep(0.1)
    assert state["timesSent"] == 2 and "lastSuccess" in state and "lastFailure" not in state
    time.sleep(0.5)
    assert len(receiver.received) == 2  # status on s2 was not watched; s3 and s4 did not match


@pytest.fixture
def quiet(db, db_url, tmp_path):
    """The app without its scheduler: the test runs the delivery itself, at the times it chooses."""
    from smartcity.app import create_app

    with TestClient(create_app(make_settings(db_url, tmp_path, run_jobs=False), db)) as c:
        yield c


def test_throttling_and_an_endpoint_that_refuses(db, sender_key, quiet, receiver):
    client = quiet
    dead = f"http://127.0.0.1:{free_port()}/notify"
    for sid, uri, throttling in (("ok", receiver.url, 60), ("dead", dead, 0)):
        sub = {
            "id": f"urn:ngsi-ld:Subscription:{sid}",
            "type": "Subscription",
            "entities": [{"type": "Streetlight"}],
            "throttling": throttling,
            "notification": {"endpoint": {"uri": uri}},
        }
        assert send(client, sender_key, "POST", "/subscriptions", sub).status_code == 201
    assert send(client, sender_key, "POST", "/entities", ap(1, 5)).status_code == 201
    assert send(client, sender_key, "POST", "/entities", ap(2, 6)).status_code == 201  # within the throttling
    now = time.time()
    assert deliver(db, now) == {"sent": 1, "retried": 2, "failed": 0}
    assert [n["body"]["data"][0]["id"] for n in receiver.received] == ["urn:ngsi-ld:Streetlight:s1"]
    assert deliver(db, now + 1) == {"sent": 0, "retried": 0, "failed": 0}  # not due before its back-off
    for attempt in range(2, MAX_ATTEMPTS + 1):
        outcome = deliver(db, now + 10**attempt)
        assert outcome["failed"] == (2 if attempt == MAX_ATTEMPTS else 0)
    state = send(client, sender_key, "GET", "/subscriptions/urn:ngsi-ld:Subscription:dead").json()["notification"]
    assert (state["status"], state["timesSent"]) == ("failed", 0)
    assert "lastFailure" in state and "lastSuccess" not in state
    assert deliver(db, now + 10**7) == {"sent": 0, "retried": 0, "failed": 0}
    good = send(client, sender_key, "GET", "/subscriptions/urn:ngsi-ld:Subscription:ok").json()["notification"]
    assert (good["status"], good["timesSent"]) == ("ok", 1)


def test_notifications_are_sent_off_the_scheduler_thread_and_a_slow_endpoint_holds_up_only_itself(
    db, sender_key, quiet, receiver
):
    """Regression: the `sensing.ngsi_notify` job posted the notifications itself, one after another, on the
    scheduler's thread: an endpoint taking seconds to answer held up every other job and every other endpoint."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from smartcity.core.jobs import Job, Scheduler
    from smartcity.sensing.ngsi_subscriptions import job

    slow_got: list[float] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(3)
            slow_got.append(time.monotonic())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    slow = ThreadingHTTPServer(("127.0.0.1", free_port()), Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    try:
        client = quiet
        # The slow one first: delivered in order of queueing, it would be posted to first.
        for sid, uri in (("slow", f"http://127.0.0.1:{slow.server_address[1]}/notify"), ("fast", receiver.url)):
            sub = {
                "id": f"urn:ngsi-ld:Subscription:{sid}",
                "type": "Subscription",
                "entities": [{"type": "Streetlight"}],
                "notification": {"endpoint": {"uri": uri}},
            }
            assert send(client, sender_key, "POST", "/subscriptions", sub).status_code == 201
        assert send(client, sender_key, "POST", "/entities", ap(1, 5)).status_code == 201
        scheduler = Scheduler(db, None, [Job("sensing.ngsi_notify", 2, job)])
        started = time.monotonic()
        scheduler.run_due()
        assert time.monotonic() - started < 1.0  # the scheduler's thread went back to its other jobs
        [fast] = receiver.wait(1, timeout=10)
        fast_at = time.monotonic()
        assert fast["body"]["subscriptionId"] == "urn:ngsi-ld:Subscription:fast"
        assert fast_at - started < 2.5 and not slow_got  # not behind the slow endpoint
        deadline = time.monotonic() + 15
        while not slow_got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow_got  # the slow one is delivered too
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = send(client, sender_key, "GET", "/subscriptions/urn:ngsi-ld:Subscription:slow").json()
            if state["notification"]["timesSent"] == 1:
                break
            time.sleep(0.1)
        assert state["notification"]["timesSent"] == 1
    finally:
        slow.shutdown()
        slow.server_close()
