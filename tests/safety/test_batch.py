"""The gateway batch endpoint: who may call it, per-item results, partial failures, limits."""

from __future__ import annotations

import math
from datetime import timedelta

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from smartcity.core import accounts
from smartcity.core.db import utcnow
from smartcity.core.errors import SmartCityError
from smartcity.safety.intake_api import GATEWAY_SCOPE, decode_columns, decode_item
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


# --- the columnar decoder agrees with the one-by-one decoder ----------------------------------------

_value = st.one_of(
    st.none(),
    st.just(""),
    st.booleans(),
    st.integers(-200, 2_000_000_000_000),
    st.floats(-200, 400, allow_nan=False),
    st.sampled_from(["12.5", "north", "2024-05-01T08:30:00+09:00", "1714520000", " tag-1 ", "SOS"]),
    st.lists(st.integers(), max_size=1),
    st.dictionaries(st.sampled_from(["rssi", "snr"]), st.integers(), max_size=2),
)
_item = st.one_of(
    st.dictionaries(
        st.sampled_from(
            ["device", "time", "lat", "lon", "speed", "bearing", "altitude", "accuracy", "battery"]
            + ["alarm", "attributes", "valid", "rssi"]
        ),
        _value,
    ),
    st.fixed_dictionaries(
        {
            "device": st.sampled_from(["tag-1", "tag-2", 17]),
            "time": st.integers(1_700_000_000, 1_800_000_000),
            "lat": st.floats(-90, 90),
            "lon": st.floats(-180, 180),
        },
        optional={"speed": st.floats(0, 50), "battery": st.integers(0, 100), "alarm": st.just("sos")},
    ),
    st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_item, max_size=12))
@example([{"device": "t", "time": 1_714_520_000_123, "lat": 37.5, "lon": 127.0, "rssi": 1, "attributes": {"rssi": 2}}])
@example([{"device": "t", "time": "2024-05-01T08:30:00+09:00", "lat": "37.5", "lon": 127, "valid": 1}, "x", {}])
@example([{"device": "t", "time": 1_714_520_000, "lat": 37.5, "lon": 127.0, "attributes": {"rssi": 2**70}}])
def test_decode_columns_gives_what_decode_item_gives(items):
    cols, errors = decode_columns(items)
    assert cols.n == len(items)
    for i, item in enumerate(items):
        try:
            p = decode_item(item)
        except SmartCityError as exc:
            assert i in errors, (item, exc)
            assert (errors[i].code, errors[i].message, errors[i].details) == (exc.code, exc.message, exc.details)
            continue
        try:
            orjson.dumps(p.attributes)
        except orjson.JSONEncodeError:  # the one-by-one decoder kept what the store could not take
            assert errors[i].details == [{"field": "attributes", "problem": "not storable"}]
            continue
        assert i not in errors, (item, errors.get(i))
        assert cols["device"][i] == p.device
        assert abs(int(cols["fix_time"][i]) - p.fix_time.timestamp() * 1000) <= 1
        for name in ("lat", "lon", "speed", "bearing", "altitude", "accuracy", "battery"):
            value = getattr(p, name)
            got = float(cols[name][i])
            assert (value is None and math.isnan(got)) or got == value, name
        assert bool(cols["valid"][i]) is p.valid and cols["alarm"][i] == p.alarm
        stored = cols["attributes"][i]
        assert (orjson.loads(stored) if stored else {}) == p.attributes
        assert cols["protocol"][i] == "batch"


def test_a_batch_refused_only_by_the_engine_says_why(db, client):
    """Every item decodes; the engine refuses one (an unknown device): its result carries the engine's error."""
    w = make_world(db)
    at = (utcnow() - timedelta(minutes=1)).isoformat()
    items = [
        {"device": w.device, "time": at, "lat": HOME[0], "lon": HOME[1]},
        {"device": "no-such-tag", "time": at, "lat": HOME[0], "lon": HOME[1]},
    ]
    r = client.post("/api/safety/positions", json={"positions": items}, headers={"X-API-Key": gateway_key(db)})
    assert [(x["status"], x.get("code")) for x in r.json()["results"]] == [("ok", None), ("error", "unknown_device")]
    assert count(db) == 1
