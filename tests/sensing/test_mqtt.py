"""Readings over MQTT through the real Mosquitto: city/sensors/{serial}/readings, one reading or an array;
bad payloads and readings recorded as rejections and acknowledged, a replay stored once (both stores)."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartcity.sensing.models import Reading, Rejection
from tests.conftest import eventually, make_settings

pytestmark = pytest.mark.mqtt


class Sensor:
    """A sensor (or its gateway) publishing over MQTT at QoS 1."""

    def __init__(self, port: int):
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sensor-{uuid.uuid4().hex[:8]}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_readings_over_mqtt_are_stored_once_and_bad_ones_recorded(db, tmp_path, mosquitto, sensors):
    from smartcity.app import create_app

    settings = make_settings(db.url, tmp_path, sensing_mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}")
    serial, other = sensors.serials[:2]
    now = int(time.time())
    device = Sensor(mosquitto.port)
    try:
        with TestClient(create_app(settings, db)) as client:
            [mqtt] = client.app.state.mqtt_clients.values()
            eventually(mqtt.connected.is_set)
            intake = client.app.state.sensing_mqtt
            topic = f"city/sensors/{serial}/readings"
            one = {"quantity": "pm25", "time": now - 120, "value": 18}
            device.send(topic, one)
            device.send(topic, one)  # redelivered, or sent twice: stored once
            device.send(
                f"city/sensors/{other}/readings",
                [
                    {"quantity": "pm10", "time": now - 120, "value": 40},
                    {"quantity": "noise", "time": now - 120, "value": 61.5},
                    {"quantity": "humidity", "time": now - 120, "value": -3},
                ],
            )
            device.send(topic, b"{not json")
            device.send("city/sensors/V02Q0000000/readings", {"quantity": "pm10", "time": now, "value": 1})
            eventually(lambda: sum(intake.stats.values()) >= 7, timeout=10)
            assert intake.stats == {"stored": 3, "duplicates": 1, "refused": 3}
    finally:
        device.close()
    with db.session() as s:
        readings = s.execute(select(Reading.quantity, Reading.observed_at, Reading.value)).all()
        codes = sorted((r.channel, r.sensor, r.code) for r in s.scalars(select(Rejection)))
    assert sorted(readings) == sorted([(2, now - 120, 18.0), (1, now - 120, 40.0), (5, now - 120, 61.5)])
    assert codes == sorted(
        [("mqtt", other, "out_of_range"), ("mqtt", serial, "malformed"), ("mqtt", "V02Q0000000", "unknown_sensor")]
    )


def test_a_read_of_many_messages_keeps_each_reading_with_its_topics_sensor(db, tmp_path, mosquitto, sensors):
    """Messages of different lengths read together: each reading is stored under its own topic's sensor (a
    "sensor" in the payload is ignored), and a payload that is not UTF-8 (recorded against its topic's sensor)
    and an item that is not an object are refused while the rest of the read is stored."""
    from smartcity.app import create_app
    from smartcity.sensing.sensors import sensor_serials

    settings = make_settings(db.url, tmp_path, sensing_mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}")
    a, b = sensors.serials[:2]
    now = int(time.time()) - 600
    device = Sensor(mosquitto.port)
    try:
        with TestClient(create_app(settings, db)) as client:
            [mqtt] = client.app.state.mqtt_clients.values()
            eventually(mqtt.connected.is_set)
            intake = client.app.state.sensing_mqtt
            device.send(
                f"city/sensors/{a}/readings",
                [{"sensor": b, "quantity": "pm10", "time": now + i, "value": 10 + i} for i in range(3)],
            )
            device.send(f"city/sensors/{b}/readings", b"\xff\xfe not utf-8")
            device.send(f"city/sensors/{b}/readings", [7, {"quantity": "pm25", "time": now, "value": 5}])
            device.send(f"city/sensors/{a}/readings", {"quantity": "noise", "time": now, "value": 50})
            eventually(lambda: sum(intake.stats.values()) >= 7, timeout=10)
            assert intake.stats == {"stored": 5, "duplicates": 0, "refused": 2}
    finally:
        device.close()
    with db.session() as s:
        ids = sensor_serials(s)
        readings = s.execute(select(Reading.sensor_id, Reading.quantity, Reading.value)).all()
        codes = sorted((r.sensor, r.code) for r in s.scalars(select(Rejection)))
    assert sorted(readings) == sorted(
        [(ids[a], 1, 10.0), (ids[a], 1, 11.0), (ids[a], 1, 12.0), (ids[b], 2, 5.0), (ids[a], 5, 50.0)]
    )
    assert codes == sorted([(b, "malformed"), ("", "malformed")])
