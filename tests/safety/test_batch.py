"""The gateway batch endpoint: who may call it, per-item results, partial failures, limits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from smartcity.core import accounts
from smartcity.core.db import utcnow
from smartcity.safety.intake_api import GATEWAY_SCOPE
from smartcity.safety.models import PositionRow
from smartcity.safety.settings import SafetySettings
from tests.conftest import make_key
from tests.safety.helpers import HOME, east_of, make_world


def gateway_key(db) -> str:
    with db.session() as s:
        _, key = accounts.create_api_key(s, "tag vendor gateway", scope=GATEWAY_SCOPE)
        return key


def count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(PositionRow))


def test_only_gateway_keys_and_administrators_may_post(db, client):
    w = make_world(db)
    body = {
        "positions": [
            {"device": w.device, "time": (utcnow() - timedelta(minutes=1)).isoformat(), "lat": HOME[0], "lon": HOME[1]}
        ]
    }
    assert client.post("/api/safety/positions", json=body).status_code == 401
    assert (
        client.post("/api/safety/positions", json=body, headers={"X-API-Key": make_key(db, "mother")}).status_code
        == 403
    )  # a guardian's key
    assert (
        client.post("/api/safety/positions", json=body, headers={"X-API-Key": make_key(db)}).status_code == 403
    )  # a system key of another scope
    r = client.post("/api/safety/positions", json=body, headers={"Authorization": f"Bearer {make_key(db, 'root')}"})
    assert r.status_code == 200 and r.json()["stored"] == 1
    assert count(db) == 1


def test_results_follow_the_order_and_partial_failures_lose_nothing(db, client):
    w = make_world(db)
    key = gateway_key(db)
    start = (utcnow() - timedelta(minutes=30)).replace(microsecond=0)
    good = [
        {
            "device": w.device,
            "time": (start + timedelta(seconds=i)).isoformat(),
            "lat": p[0],
            "lon": p[1],
            "speed": 1.2,
            "bearing": 90,
            "altitude": 30,
            "accuracy": 8,
            "battery": 80,
            "attributes": {"rssi": -71},
        }
        for i, p in enumerate(east_of(HOME, 10 * i) for i in range(5))
    ]
    items = [
        good[0],
        good[1],
        {**good[2], "device": "no-such-tag"},
        {**good[3], "lat": "north"},
        {**good[3], "lon": 181},
        {**good[3], "time": (utcnow() + timedelta(days=1)).isoformat()},
        "not an object",
        good[0],  # a replay inside the batch
        {**good[4], "time": int((start + timedelta(seconds=4)).timestamp() * 1000), "alarm": "SOS"},
    ]
    r = client.post("/api/safety/positions", json={"positions": items}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    doc = r.json()
    statuses = [(x["status"], x.get("code")) for x in doc["results"]]
    assert statuses == [
        ("ok", None),
        ("ok", None),
        ("error", "unknown_device"),
        ("error", "invalid_position"),
        ("error", "invalid_position"),
        ("error", "future_fix"),
        ("error", "invalid_position"),
        ("duplicate", None),
        ("ok", None),
    ]
    assert doc["results"][2]["http_status"] == 404 and doc["results"][3]["details"][0]["field"] == "lat"
    assert (doc["stored"], doc["duplicates"], doc["errors"]) == (3, 1, 5)
    assert count(db) == 3
    with db.session() as s:
        row = s.scalars(select(PositionRow).order_by(PositionRow.fix_time.desc())).first()
        assert (row.alarm, row.protocol, row.attributes) == ("sos", "batch", {"rssi": -71})
    # The gateway resends the whole batch: the accepted ones are duplicates now, nothing doubles.
    again = client.post("/api/safety/positions", json={"positions": items}, headers={"X-API-Key": key}).json()
    assert (again["stored"], again["duplicates"]) == (0, 4)
    assert count(db) == 3


def test_limits_and_malformed_bodies(db, client, tmp_path):
    w = make_world(db)
    key = {"X-API-Key": gateway_key(db)}
    limit = client.app.state.settings.of(SafetySettings).gateway_max_positions
    item = {"device": w.device, "time": utcnow().isoformat(), "lat": HOME[0], "lon": HOME[1]}
    r = client.post("/api/safety/positions", json={"positions": [item] * (limit + 1)}, headers=key)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_many_positions")
    big = b'{"positions": [' + b" " * client.app.state.settings.of(SafetySettings).gateway_max_bytes + b"]}"
    assert client.post("/api/safety/positions", content=big, headers=key).status_code == 413
    for body in (b"{oops", b"[]", b'{"positions": {}}', b'{"items": []}'):
        r = client.post("/api/safety/positions", content=body, headers={**key, "content-type": "application/json"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "malformed_body"), body
    r = client.post("/api/safety/positions", json={"positions": []}, headers=key)
    assert r.json() == {"stored": 0, "duplicates": 0, "errors": 0, "results": []}
    assert count(db) == 0


def test_the_cli_issues_a_gateway_key_that_posts_positions(db, client, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from smartcity.cli import main
    from smartcity.core.models import ApiKey
    from smartcity.settings import get_settings

    w = make_world(db)
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db.url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(main, ["safety", "gateway-key", "tag vendor"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "scope safety.gateway" in out.output
    key = out.output.strip().splitlines()[-1]
    body = {
        "positions": [
            {"device": w.device, "time": (utcnow() - timedelta(minutes=1)).isoformat(), "lat": HOME[0], "lon": HOME[1]}
        ]
    }
    r = client.post("/api/safety/positions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["stored"] == 1
    with db.session() as s:  # the key itself is never stored
        assert s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.key_hash == key)) == 0
