"""Sensor readings over MQTT: the sensing module's subscription on core's MQTT client (`smartcity.core.mqtt`).

With SMARTCITY_SENSING_MQTT_URL set, the module subscribes to SMARTCITY_SENSING_MQTT_TOPIC
(city/sensors/+/readings). A message on city/sensors/{serial}/readings is that sensor's JSON: one reading
{"quantity": "pm10", "time": 1767225600, "value": 21} or an array of them (a "sensor" field is ignored: the
topic names the sensor; the broker's ACL keeps each sensor to its own topic).

A message is acknowledged once its readings are stored or refused and recorded (`sensing_rejections`); a
payload that is not JSON is recorded as one rejection and acknowledged (redelivery cannot mend it). When the
store fails the message is not acknowledged: core retries it after a back-off, and a replay is stored once.
"""

from __future__ import annotations

import asyncio

import orjson

from smartcity.core.context import context_of
from smartcity.core.mqtt import Broker, broker_of
from smartcity.sensing.intake import INTAKE, Batch, Refusal, no_readings, validate
from smartcity.sensing.settings import SensingSettings

CHANNEL = "mqtt"


def broker(context) -> Broker | None:
    settings = context.settings.of(SensingSettings)
    if not settings.mqtt_url:
        return None
    broker_of(settings.mqtt_url)  # a malformed URL stops the app's start, naming the variable
    return Broker(settings.mqtt_url, settings.mqtt_client_id)


WIFI_TOPIC = "city/wifi/+/status"


def topics(context) -> list[str]:
    """The configured topic filters, and public Wi-Fi status (city/wifi/+/status) unless they name it already
    (a shared subscription: add $share/smartcity/city/wifi/+/status to SMARTCITY_SENSING_MQTT_TOPIC)."""
    found = [t.strip() for t in context.settings.of(SensingSettings).mqtt_topic.split(",") if t.strip()]
    if not any(t.endswith("wifi/+/status") for t in found):
        found.append(WIFI_TOPIC)
    return found


def access_point_of(topic: str) -> int | None:
    """The access point's id in city/wifi/{id}/status."""
    levels = topic.split("/")
    if len(levels) >= 3 and levels[-1] == "status" and levels[-3] == "wifi" and levels[-2].isdigit():
        return int(levels[-2])
    return None


def serial_of(topic: str) -> str | None:
    """The serial in city/sensors/{serial}/readings (any prefix before sensors/{serial}/readings)."""
    levels = topic.split("/")
    if len(levels) >= 3 and levels[-1] == "readings" and levels[-3] == "sensors" and levels[-2]:
        return levels[-2]
    return None


class ReadingsOverMqtt:
    """The subscription's handler: each message's readings validated, all of one read stored in one batch."""

    def __init__(self, app):
        self.app = app
        self.db = app.state.db
        self.stats = {"stored": 0, "duplicates": 0, "refused": 0}
        app.state.sensing_mqtt = self

    async def __call__(self, messages: list) -> list:
        # All of one read validated together, beside the event loop (which keeps reading the broker): one
        # columnar batch and one queued item instead of one per message (measured: bench/bench_sensing.py).
        statuses = [m for m in messages if access_point_of(m.topic) is not None]
        readings, serials, batches = self._readings([m for m in messages if access_point_of(m.topic) is None])
        try:
            if statuses:
                await asyncio.to_thread(self._statuses, statuses)
            if readings:
                batches.append(await asyncio.to_thread(validate, self.db, readings, CHANNEL, serial_each=serials))
            intake = context_of(self.db).slot(INTAKE)
            # All of one read queued at once: the writer takes them in one transaction.
            outcomes = await asyncio.gather(*(asyncio.wrap_future(intake.submit(b)) for b in batches))
        except Exception as exc:  # noqa: BLE001 - not stored: core retries each message after a back-off
            return [exc] * len(messages)
        for outcome in outcomes:
            self.stats["stored"] += outcome.stored
            self.stats["duplicates"] += outcome.duplicates
            self.stats["refused"] += len(outcome.refused)
        return [None] * len(messages)

    def _readings(self, messages: list) -> tuple[list, list[str], list[Batch]]:
        """The messages' readings and each one's sensor (its topic's serial), and a refusal for each message that
        cannot be read at all. Decoded by orjson, and a reading is not copied to carry its serial: the profile of
        bench_sensing's MQTT phase had the stdlib decoder and those copies as the handler's largest cost."""
        readings: list = []
        serials: list[str] = []
        refused: list[Batch] = []
        for msg in messages:
            serial = serial_of(msg.topic)
            try:
                payload = orjson.loads(msg.payload)
            except orjson.JSONDecodeError as exc:
                refused.append(self._refused(serial, "malformed", f"the payload is not JSON: {exc}"))
                continue
            if serial is None:
                refused.append(
                    self._refused("", "malformed", f"the topic {msg.topic} is not city/sensors/{{serial}}/readings")
                )
                continue
            items = payload if isinstance(payload, list) else [payload]
            readings.extend(items)
            serials.extend([serial] * len(items))
        return readings, serials, refused

    def _statuses(self, messages: list) -> None:
        """Public Wi-Fi status reports, one object or an array per message, stored (or refused and recorded) in one
        transaction; a payload that is not JSON is recorded as a refusal."""
        from smartcity.sensing.wifi import record_status

        reports: list = []
        for msg in messages:
            ap = access_point_of(msg.topic)
            try:
                payload = orjson.loads(msg.payload)
            except orjson.JSONDecodeError:
                reports.append(f"access point {ap}: the payload is not JSON")
                continue
            for item in payload if isinstance(payload, list) else [payload]:
                reports.append({**item, "access_point": ap} if isinstance(item, dict) else item)
        outcome = record_status(self.db, reports, CHANNEL)
        self.stats["status_stored"] = self.stats.get("status_stored", 0) + outcome.stored
        self.stats["status_refused"] = self.stats.get("status_refused", 0) + len(outcome.rejected)

    def _refused(self, serial: str | None, code: str, detail: str) -> Batch:
        return Batch(CHANNEL, no_readings(), [Refusal(0, code, detail, sensor=serial or "")])
