"""The recommended broker configuration (docs/mosquitto.conf) holds the phones' positions while the platform is
down — beyond Mosquitto's default of 1,000 queued messages, and across a restart of the broker itself.

The real Mosquitto runs the shipped file with only its addresses and paths changed (no TLS listener: no
certificate here); the platform connects with a persistent session as in production."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from smartcity.core.db import Database, utcnow
from smartcity.safety.models import PositionRow
from tests.conftest import eventually, make_settings
from tests.safety.helpers import HOME, make_world
from tests.servers import MosquittoServer

pytestmark = pytest.mark.mqtt

SHIPPED = Path(__file__).parents[2] / "docs" / "mosquitto.conf"
OUTAGE = 3000  # positions sent while the platform is down: three times Mosquitto's default queue


def config(drop_queue_limit: bool = False) -> tuple[str, str]:
    """The shipped configuration for a test broker, and the ACL file its comment recommends."""
    text = SHIPPED.read_text()
    text = text.replace("listener 1883 127.0.0.1", "listener {port} 127.0.0.1")
    text = re.sub(r"\nlistener 8883\n(?:[^\n#][^\n]*\n)*", "\n", text)  # the TLS listener: no certificate here
    text = text.replace("persistence_location /var/lib/mosquitto/", "persistence_location {root}/")
    text = text.replace("/etc/mosquitto/passwd", "{root}/passwd").replace("/etc/mosquitto/acl", "{root}/acl")
    if drop_queue_limit:
        text = re.sub(r"\nmax_queued_messages \d+\n", "\n", text)
    assert "listener 8883" not in text and "{root}/passwd" in text
    acl = "\n".join(line[4:] for line in SHIPPED.read_text().splitlines() if line.startswith("#   ")) + "\n"
    return text, acl


def broker(drop_queue_limit: bool = False) -> MosquittoServer:
    text, acl = config(drop_queue_limit)
    server = MosquittoServer(text)
    (server.root / "acl").write_text(acl)
    passwd = server.root / "passwd"
    for i, (user, password) in enumerate([("smartcity", "platform-pw"), ("haneul", "phone-pw")]):
        subprocess.run(
            ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    return server.start()


def platform(db, tmp_path, port: int) -> TestClient:
    from smartcity.app import create_app

    settings = make_settings(
        db.url,
        tmp_path,
        mqtt_url=f"mqtt://smartcity:platform-pw@127.0.0.1:{port}",
        mqtt_client_id="smartcity-broker-test",
        osmand_port=0,
    )
    return TestClient(create_app(settings, db))


def stored(db, since: datetime | None = None) -> int:
    query = select(func.count()).select_from(PositionRow)
    if since is not None:
        query = query.where(PositionRow.fix_time >= since)
    with db.session() as s:
        return s.scalar(query)


def phone_sends(port: int, n: int, start: int | None = None) -> None:
    """The OwnTracks app in MQTT mode, with its own broker account, reporting `n` fixes a second apart from
    `start` (epoch seconds; two hours ago by default)."""
    import orjson
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="haneul-phone")
    client.username_pw_set("haneul", "phone-pw")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if start is None:
        start = int((utcnow() - timedelta(hours=2)).timestamp())
    try:
        infos = [
            client.publish(
                "owntracks/haneul/phone",
                orjson.dumps(
                    {"_type": "location", "lat": HOME[0], "lon": HOME[1], "tst": start + i, "acc": 10, "tid": "hn"}
                ),
                qos=1,
            )
            for i in range(n)
        ]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def outage(db, tmp_path, server: MosquittoServer) -> MosquittoServer:
    """The platform subscribes once (its session is made), goes down, the phone reports OUTAGE fixes, and the
    broker itself restarts before the platform comes back."""
    with platform(db, tmp_path, server.port) as client:
        [mqtt] = client.app.state.mqtt_clients.values()
        eventually(mqtt.connected.is_set)
    phone_sends(server.port, OUTAGE)
    server.stop(keep_files=True)
    return server.start()


@pytest.fixture
def world_db(sqlite_url):
    db = Database(sqlite_url)
    make_world(db, device="haneul/phone", protocols="owntracks")
    yield db
    db.dispose()


def test_the_recommended_broker_keeps_every_position_of_an_outage(world_db, tmp_path):
    server = outage(world_db, tmp_path, broker())
    try:
        with platform(world_db, tmp_path, server.port):
            eventually(lambda: stored(world_db) == OUTAGE, timeout=90)
    finally:
        server.stop()


def test_with_mosquittos_default_queue_positions_are_lost(world_db, tmp_path):
    """The same outage with Mosquitto's default max_queued_messages: what the shipped setting prevents."""
    server = outage(world_db, tmp_path, broker(drop_queue_limit=True))
    try:
        with platform(world_db, tmp_path, server.port) as client:
            [mqtt] = client.app.state.mqtt_clients.values()
            eventually(lambda: mqtt.stats["received"] >= 1000, timeout=60)
            # The broker hands a client its queue in order: once a fix sent now is stored, whatever it held
            # from the outage has arrived before it.
            marker = utcnow().replace(microsecond=0) - timedelta(minutes=1)
            phone_sends(server.port, 1, start=int(marker.timestamp()))
            eventually(lambda: stored(world_db, since=marker) == 1)
            eventually(lambda: stored(world_db) == mqtt.stats["received"])
        kept = stored(world_db) - 1
        assert 1000 <= kept < OUTAGE
    finally:
        server.stop()
