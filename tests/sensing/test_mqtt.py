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
