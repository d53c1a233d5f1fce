"""OwnTracks over MQTT: the safety module's subscription on core's MQTT client (`smartcity.core.mqtt`).

With `SMARTCITY_MQTT_URL` set (mqtt://user:password@host:1883, mqtts:// for TLS), the module subscribes to the
filters of `SMARTCITY_MQTT_TOPIC` (owntracks/+/+ and owntracks/+/+/event) through its declaration; core keeps
the connection, reads, acknowledges and retries (see core.mqtt for "durably stored" over MQTT). A message on
owntracks/{user}/{device} (locations) or owntracks/{user}/{device}/event (the app's region transitions) is
decoded like OwnTracks over HTTP (`owntracks.decode`) for the device registered as "{user}/{device}" for the
owntracks protocol; the other subtopics the app uses (cmd, info, waypoints, step…) carry no position and are
acknowledged and skipped. The broker authenticates MQTT clients (and its ACL keeps each to its own topic): no
device secret here. A redelivered position is recognised as a replay and stored once.

Invalid payloads, unknown devices and persons without consent are counted
(`smartcity_intake_total{protocol="mqtt", result=<code>}`) and dropped (acknowledged): they will never become
valid by being redelivered. When the intake is overloaded or the store fails, core retries the message after a
back-off and acknowledges it only once stored.
"""

from __future__ import annotations

import logging

from smartcity.core.errors import SmartCityError
from smartcity.core.mqtt import Broker, broker_of
from smartcity.safety.intake_api import count, engine_of, settle
from smartcity.safety.owntracks import Ignored, decode, identifier, parse
from smartcity.safety.settings import SafetySettings

log = logging.getLogger(__name__)
PROTOCOL = "mqtt"

__all__ = ["OwnTracksOverMqtt", "broker", "broker_of", "topics"]


def broker(context) -> Broker | None:
    """The broker of SMARTCITY_MQTT_URL (None: MQTT is off)."""
    settings = context.settings.of(SafetySettings)
    if not settings.mqtt_url:
        return None
    broker_of(settings.mqtt_url)  # a malformed URL stops the app's start, with the variable's name in the error
    return Broker(settings.mqtt_url, settings.mqtt_client_id, settings.mqtt_inflight)


def topics(context) -> list[str]:
    return [t.strip() for t in context.settings.of(SafetySettings).mqtt_topic.split(",") if t.strip()]


class OwnTracksOverMqtt:
    """The subscription's handler: the messages of one read → positions → stored as one unit → one outcome per
    message (None: done; a SmartCityError under 500: dropped; another error: core retries the message). The app
    keeps it as `app.state.mqtt_intake`; `stats` counts messages and positions."""

    def __init__(self, app):
        self.app = app
        # Positions stored and found duplicate, messages dropped and given back to be retried (what arrived and
        # was acknowledged: the core client's `stats`).
        self.stats = {"stored": 0, "duplicates": 0, "dropped": 0, "retried": 0}
        app.state.mqtt_intake = self

    async def __call__(self, messages: list) -> list:
        decoded = [self._decode(msg) for msg in messages]
        flat = [p for positions in decoded if isinstance(positions, list) for p in positions]
        outcomes = await self._outcomes(flat) if flat else []
        out, at = [], 0
        for positions in decoded:
            if not isinstance(positions, list):
                out.append(self._dropped(positions))
                continue
            mine, at = outcomes[at : at + len(positions)], at + len(positions)
            out.append(self._settled(mine))
        return out

    def _decode(self, msg) -> list | SmartCityError | None:
        """The message's positions; None when it holds none (acknowledged), or the error that drops it."""
        levels = msg.topic.split("/")
        try:
            if len(levels) < 3:
                raise SmartCityError(f"the topic {msg.topic} is not owntracks/user/device", code="bad_topic")
            if len(levels) > 3 and levels[3:] != ["event"]:
                count(self.app, PROTOCOL, "ignored")  # cmd, info, waypoints…: nothing to store
                return None
            device = identifier(levels[1], levels[2])
            positions = []
            for message in parse(msg.payload):
                try:
                    positions.append(decode(message, device, PROTOCOL))
                except Ignored:
                    count(self.app, PROTOCOL, "ignored")
        except SmartCityError as exc:
            return exc
        return positions or None

    def _dropped(self, outcome: SmartCityError | None) -> SmartCityError | None:
        if outcome is not None:
            self.stats["dropped"] += 1
            count(self.app, PROTOCOL, outcome.code)
        return outcome

    def _settled(self, outcomes: list):
        """A message's outcome from its positions': done once all are stored, dropped when one can never be
        (the engine refused it: redelivery could not make it valid), else the failure (retried)."""
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is None:
            for ack in outcomes:
                self.stats["duplicates" if ack.duplicate else "stored"] += 1
                count(self.app, PROTOCOL, "duplicate" if ack.duplicate else "stored")
            return None
        if isinstance(failed, SmartCityError) and failed.status < 500:
            return self._dropped(failed)
        self.stats["retried"] += 1
        return failed

    async def _outcomes(self, positions: list) -> list:
        """One outcome per position: an Ack, or the error that refused or failed it."""
        try:
            return await settle(engine_of(self.app), positions)
        except Exception as exc:  # noqa: BLE001 - e.g. the writer could not be started: retried
            return [exc] * len(positions)
