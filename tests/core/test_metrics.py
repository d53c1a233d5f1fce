"""/metrics: the figures operators watch move when the platform works — intake by protocol, the intake
queue, the notification outbox and its failures, SSE subscribers, scheduled jobs, the process itself."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from smartcity.core import notify
from smartcity.core.db import utcnow
from smartcity.core.jobs import Job, Scheduler
from smartcity.safety.engine import get_engine
from tests.conftest import LiveServer, eventually, make_settings
from tests.safety.helpers import HOME, make_world
from tests.servers import free_port


def scrape(get) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    r = get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def traccar_query(device: str, at) -> str:
    """The Traccar Client (Android) query for one fix, in its parameter order."""
    return (
        f"id={device}&timestamp={int(at.timestamp())}&lat={HOME[0]}&lon={HOME[1]}&speed=0.0&bearing=0.0"
        "&altitude=30.0&accuracy=12.0&batt=87.0"
    )


def test_positions_stored_and_refused_are_counted_by_protocol(db, client):
    world = make_world(db)
    before = scrape(client.get)
    for seconds in (30, 20, 10):
        assert (
            client.get(f"/osmand?{traccar_query(world.device, utcnow() - timedelta(seconds=seconds))}").status_code
            == 200
        )
    assert client.get(f"/osmand?{traccar_query('nobody', utcnow())}").status_code != 200
    after = scrape(client.get)
    stored = {"protocol": "osmand", "result": "stored"}
    assert value(after, "smartcity_intake_total", **stored) - value(before, "smartcity_intake_total", **stored) == 3
    refused = {"protocol": "osmand", "result": "unknown_device"}
    assert value(after, "smartcity_intake_total", **refused) - value(before, "smartcity_intake_total", **refused) == 1
    # The queue's depth is the engine's own count (all stored by now: each request waited for its commit).
    assert ("smartcity_intake_queue_depth", (("queue", "safety.positions"),)) in after
    assert value(after, "smartcity_intake_queue_depth", queue="safety.positions") == get_engine(db).queued == 0


def test_the_outbox_backlog_and_failed_deliveries(db, app, tmp_path):
    # Without the app's lifespan its scheduler does not run: only this test delivers the outbox.
    client = TestClient(app)
    before = scrape(client.get)
    assert value(before, "smartcity_notifications_outbox", status="pending") == 0
    with db.session() as s:
        for i in range(3):
            notify.queue(s, "sms", f"010-0000-000{i}", "a test message")
    assert value(scrape(client.get), "smartcity_notifications_outbox", status="pending") == 3
    # An SMS gateway that is not there: every attempt fails, is retried later, and is counted.
    closed = make_settings(db.url, tmp_path, sms_gateway_url=f"http://127.0.0.1:{free_port()}/sms")
    assert notify.deliver_pending(db, closed) == 0
    after = scrape(client.get)
    assert (
        value(after, "smartcity_notification_failures_total", channel="sms")
        - value(before, "smartcity_notification_failures_total", channel="sms")
        == 3
    )
    assert value(after, "smartcity_notifications_outbox", status="pending") == 3  # still the backlog
    with db.session() as s:
        for message in s.query(notify.Notification):
            message.status = "failed"
    after = scrape(client.get)
    assert value(after, "smartcity_notifications_outbox", status="pending") == 0
    assert value(after, "smartcity_notifications_outbox", status="failed") == 3


def test_job_runs_and_failures_are_counted(db, client, settings):
    ran = []

    def fine(db, settings):
        ran.append(1)

    def broken(db, settings):
        raise RuntimeError("the job's own fault")

    before = scrape(client.get)
    scheduler = Scheduler(db, settings, [Job("metrics-test-fine", 60, fine), Job("metrics-test-broken", 60, broken)])
    scheduler.run_due(now=1000.0)
    scheduler.run_due(now=1001.0)  # not due again yet
    scheduler.run_due(now=1061.0)
    after = scrape(client.get)
    assert len(ran) == 2
    for job, failures in (("metrics-test-fine", 0), ("metrics-test-broken", 2)):
        assert (
            value(after, "smartcity_job_runs_total", job=job) - value(before, "smartcity_job_runs_total", job=job) == 2
        )
        assert value(after, "smartcity_job_failures_total", job=job) == failures


def test_sse_subscribers_are_counted_while_connected(app):
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        assert value(scrape(http.get), "smartcity_sse_subscribers") == 0
        with http.stream("GET", "/api/events/stream", params={"topics": "report."}) as stream:
            assert stream.status_code == 200
            eventually(lambda: value(scrape(http.get), "smartcity_sse_subscribers") == 1)
        eventually(lambda: value(scrape(http.get), "smartcity_sse_subscribers") == 0)


def test_process_and_garbage_collector_figures(client):
    first = scrape(client.get)
    assert value(first, "process_resident_memory_bytes") > 0
    assert ("python_gc_collections_total", (("generation", "0"),)) in first
    cpu = value(first, "process_cpu_seconds_total")
    busy = time.process_time() + 0.3
    while time.process_time() < busy:
        sum(range(10_000))
    assert value(scrape(client.get), "process_cpu_seconds_total") > cpu


def test_http_requests_are_counted_exactly_by_method_route_and_status(client, monkeypatch):
    """MetricsMiddleware keeps each label set's children: the counts stay exact per (method, route, status),
    for label sets it keeps and for those past MAX_KEPT, which it looks up each time."""
    from smartcity.core.web import MetricsMiddleware

    route, inside, outside = "/api/geo/locate", {"lat": 37.5663, "lon": 126.9779}, {"lat": 35.1796, "lon": 129.0756}
    for kept in (MetricsMiddleware.MAX_KEPT, 0):
        monkeypatch.setattr(MetricsMiddleware, "MAX_KEPT", kept)
        before = scrape(client.get)
        for _ in range(3):
            assert client.get(route, params=inside).status_code == 200
        for _ in range(2):
            assert client.get(route, params=outside).status_code == 422
        assert client.get("/healthz").status_code == 200
        after = scrape(client.get)

        def grew(name: str, before=before, after=after, **labels) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        total = "smartcity_http_requests_total"
        assert grew(total, method="GET", route=route, status="200") == 3, kept
        assert grew(total, method="GET", route=route, status="422") == 2, kept
        assert grew(total, method="GET", route="/healthz", status="200") == 1, kept
        assert grew("smartcity_http_request_seconds_count", route=route) == 5, kept
