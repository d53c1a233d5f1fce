"""OwnTracks over MQTT through a real Mosquitto: storage, replays, bad payloads dropped and counted,
acknowledgment only after storage (the broker redelivers what was not stored), reconnection."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import uuid
from datetime import timedelta

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import aliased

from smartcity.core.db import utcnow
from smartcity.safety import service
from smartcity.safety.models import PositionRow, all_positions
from tests.conftest import eventually, make_settings
from tests.safety.helpers import HOME, make_world
from tests.servers import MosquittoServer

pytestmark = pytest.mark.mqtt
_users = itertools.count()


class Publisher:
    """A phone running OwnTracks in MQTT mode."""

    def __init__(self, port: int):
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"phone-{uuid.uuid4().hex[:8]}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def location(at, **extra) -> dict:
    return {
        "_type": "location",
        "lat": HOME[0],
        "lon": HOME[1],
        "tst": int(at.timestamp()),
        "acc": 10,
        "vel": 36,
        "batt": 70,
        "tid": "hn",
        **extra,
    }


def stored(db) -> list[PositionRow]:
    """Stored positions, staged (the SQLite writer process's staging table) or not."""
    positions = aliased(PositionRow, all_positions())
    with db.session() as s:
        return list(s.scalars(select(positions).order_by(positions.fix_time)))


def serving(db, tmp_path, port: int, **settings):
    from smartcity.app import create_app

    app = create_app(
        make_settings(db.url, tmp_path, mqtt_url=f"mqtt://127.0.0.1:{port}", osmand_port=0, **settings), db
    )
    return TestClient(app)


def mqtt_client(app):
    """The app's one MQTT client (core's), which the safety module's OwnTracks subscription goes through."""
    [client] = app.state.mqtt_clients.values()
    return client


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_owntracks_messages_are_stored_and_bad_ones_dropped(db, tmp_path, mosquitto, writer):
    """Also through the writer process, which refuses an unknown device only once the message reaches it:
    the refusal still drops (acknowledges) the message rather than retrying it."""
    user = f"user{next(_users)}"
    make_world(db, device=f"{user}/phone", protocols="owntracks")
    phone = Publisher(mosquitto.port)
    try:
        with serving(db, tmp_path, mosquitto.port, safety_writer=writer) as client:
            intake, mqtt = client.app.state.mqtt_intake, mqtt_client(client.app)
            eventually(mqtt.connected.is_set)
            at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
            topic = f"owntracks/{user}/phone"
            phone.send(topic, location(at))
            phone.send(topic, location(at))  # a replay
            for bad in (b"{not json", {"_type": "location", "lat": "x", "lon": 1, "tst": 1}, {"_type": "encrypted"}):
                phone.send(topic, bad)
            phone.send(f"owntracks/{user}/stolen-phone", location(at))  # unknown device
            phone.send(topic, {"_type": "lwt", "tst": 1})  # ignored
            phone.send(topic, location(at + timedelta(seconds=30), batt=69))
            eventually(lambda: intake.stats["stored"] + intake.stats["duplicates"] >= 3)
            rows = stored(db)
            assert [(r.fix_time, r.battery, r.protocol) for r in rows] == [
                (at, 70, "mqtt"),
                (at + timedelta(seconds=30), 69, "mqtt"),
            ]
            assert rows[0].speed == pytest.approx(10.0)
            # Both copies of the replay are acknowledged; whether the second counts as a duplicate depends on
            # whether the engine wrote them in one batch (it then answers both with the first's Ack).
            assert (intake.stats["stored"] + intake.stats["duplicates"], intake.stats["dropped"]) == (3, 4)
            metrics = client.get("/metrics").text
            assert 'smartcity_intake_total{protocol="mqtt",result="unknown_device"} 1.0' in metrics
            assert 'smartcity_intake_total{protocol="mqtt",result="encrypted_payload"} 1.0' in metrics
    finally:
        phone.close()


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_message_is_acknowledged_only_once_stored(sqlite_url, tmp_path, mosquitto, writer):
    """The store is locked while a message arrives; the platform stops before it could store it. With a
    persistent session the broker still holds the message and hands it to the next run."""
    from smartcity.core.db import Database

    db = Database(sqlite_url)
    user = f"user{next(_users)}"
    make_world(db, device=f"{user}/phone", protocols="owntracks")
    client_id = f"smartcity-test-{uuid.uuid4().hex[:8]}"
    phone = Publisher(mosquitto.port)
    at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    lock = sqlite3.connect(sqlite_url.split("///", 1)[1], timeout=1, check_same_thread=False)
    try:
        with serving(db, tmp_path, mosquitto.port, mqtt_client_id=client_id, safety_writer=writer) as client:
            intake, mqtt = client.app.state.mqtt_intake, mqtt_client(client.app)
            eventually(mqtt.connected.is_set)
            lock.execute("BEGIN EXCLUSIVE")  # the writer cannot commit for now
            phone.send(f"owntracks/{user}/phone", location(at))
            eventually(lambda: mqtt.stats["received"] == 1)
            # Released after the MQTT client has given up waiting and disconnected (5 s) without an ack.
            threading.Timer(6.5, lock.rollback).start()
        rows = stored(db)
        assert len(rows) == 1  # the engine's last flush stored it, after the client disconnected
        with serving(db, tmp_path, mosquitto.port, mqtt_client_id=client_id, safety_writer=writer) as client:
            intake = client.app.state.mqtt_intake
            eventually(lambda: intake.stats["duplicates"] == 1, timeout=10)  # redelivered: it was never acked
        assert len(stored(db)) == 1
    finally:
        lock.close()
        phone.close()
        db.dispose()


def test_the_client_reconnects_when_the_broker_comes_back(sqlite_url, tmp_path):
    from smartcity.core.db import Database

    db = Database(sqlite_url)
    make_world(db, device="walker/phone", protocols="owntracks")
    broker = MosquittoServer().start()
    try:
        with serving(db, tmp_path, broker.port) as client:
            intake, mqtt = client.app.state.mqtt_intake, mqtt_client(client.app)
            eventually(mqtt.connected.is_set)
            broker.stop()
            eventually(lambda: not mqtt.connected.is_set())
            port = broker.port
            broker = MosquittoServer()
            broker.port = port
            broker.start()
            eventually(mqtt.connected.is_set, timeout=15)
            phone = Publisher(port)
            phone.send("owntracks/walker/phone", location(utcnow() - timedelta(seconds=10)))
            phone.close()
            eventually(lambda: intake.stats["stored"] == 1)
        assert len(stored(db)) == 1
    finally:
        broker.stop()
        db.dispose()


def test_transitions_on_the_event_subtopic_are_received_with_the_default_subscription(db, tmp_path, mosquitto):
    """OwnTracks publishes region transitions on owntracks/<user>/<device>/event (issue 10.7): the default
    topic setting must take them; a device not registered for OwnTracks is dropped."""
    user = f"user{next(_users)}"
    w = make_world(db, device=f"{user}/phone", protocols="owntracks")
    with db.session() as s:
        service.add_device(s, w.person_id, f"{user}/tracker", "osmand", actor="test")
    phone = Publisher(mosquitto.port)
    try:
        with serving(db, tmp_path, mosquitto.port) as client:  # SMARTCITY_MQTT_TOPIC left at its default
            intake, mqtt = client.app.state.mqtt_intake, mqtt_client(client.app)
            eventually(mqtt.connected.is_set)
            at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
            transition = {
                "_type": "transition",
                "wtst": int(at.timestamp()) - 3600,
                "lat": HOME[0],
                "lon": HOME[1],
                "tst": int(at.timestamp()),
                "acc": 14,
                "tid": "hn",
                "event": "enter",
                "desc": "Home",
                "t": "c",
            }
            phone.send(f"owntracks/{user}/phone/event", transition)
            phone.send(f"owntracks/{user}/phone/cmd", {"_type": "cmd", "action": "reportLocation"})
            phone.send(f"owntracks/{user}/tracker", location(at))  # registered for OsmAnd only
            # The cmd subtopic is the platform's to the phone: not subscribed, never received.
            eventually(lambda: (mqtt.stats["received"], intake.stats["stored"], intake.stats["dropped"]) == (2, 1, 1))
            [row] = stored(db)
            assert (row.fix_time, row.protocol, row.attributes["event"], row.attributes["transition"]) == (
                at,
                "mqtt",
                "enter",
                True,
            )
            metrics = client.get("/metrics").text
            assert 'smartcity_intake_total{protocol="mqtt",result="protocol_not_allowed"} 1.0' in metrics
    finally:
        phone.close()
