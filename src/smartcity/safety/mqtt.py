"""OwnTracks over MQTT, through an external broker (Mosquitto or any MQTT 5 broker).

With `SMARTCITY_MQTT_URL` set (mqtt://user:password@host:1883, mqtts:// for TLS), each serving process
runs a paho-mqtt client subscribed to `SMARTCITY_MQTT_TOPIC` (owntracks/+/+) at QoS 1. A message on
owntracks/{user}/{device} is decoded like OwnTracks over HTTP (`owntracks.decode`) for the device
registered as "{user}/{device}".

"Durably stored" over MQTT: the client acknowledges messages by hand (paho's manual_ack). The PUBACK of a
QoS 1 message goes to the broker only after the engine committed the position, so a message the
platform had not stored when it stopped is still the broker's (redelivered on reconnection when
SMARTCITY_MQTT_CLIENT_ID keeps a persistent session); a redelivered position is recognised as a replay
and stored once. MQTT 5's Receive Maximum (`SMARTCITY_MQTT_INFLIGHT`) lets the broker keep that many
messages in flight while they are being stored.

Invalid payloads, unknown devices and persons without consent are logged, counted
(`smartcity_safety_positions_total{protocol="mqtt", result=<code>}`) and acknowledged (dropped): they
will never become valid by being redelivered. When the intake is overloaded or the store fails, the
message is retried after a back-off and acknowledged only once stored. The client reconnects by itself
with a back-off of 1 s doubling to 60 s; nothing a device sends can stop it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future
from urllib.parse import unquote, urlsplit

from smartcity.core.errors import SmartCityError
from smartcity.safety.engine import Overloaded
from smartcity.safety.intake_api import count, engine_of
from smartcity.safety.owntracks import Ignored, decode, identifier, parse

log = logging.getLogger(__name__)
PROTOCOL = "mqtt"
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps a named client's messages while it is away


def broker_of(url: str) -> dict:
    """host, port, username, password, tls from mqtt[s]://user:password@host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"SMARTCITY_MQTT_URL must look like mqtt://user:password@host:1883, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return {"host": parts.hostname, "port": parts.port or (8883 if tls else 1883), "tls": tls,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None}


class MqttIntake:
    """The process's OwnTracks MQTT subscriber: decode, submit, acknowledge once stored."""

    def __init__(self, app):
        import paho.mqtt.client as paho

        self.app = app
        settings = app.state.settings
        self.broker = broker_of(settings.mqtt_url)
        self.topic = settings.mqtt_topic
        self.persistent = bool(settings.mqtt_client_id)
        client_id = settings.mqtt_client_id or f"smartcity-{uuid.uuid4().hex[:12]}"
        self.inflight = max(1, settings.mqtt_inflight)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5, manual_ack=True)
        if self.broker["username"]:
            self.client.username_pw_set(self.broker["username"], self.broker["password"])
        if self.broker["tls"]:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        self.client.max_inflight_messages_set(self.inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.stopping = False
        self._pending = 0
        self._idle = threading.Condition()
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "dropped": 0, "retried": 0}

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> MqttIntake:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = min(self.inflight, 65535)
        if self.persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.broker["host"], self.broker["port"], keepalive=30,
                                  clean_start=not self.persistent, properties=props)
        self.client.loop_start()
        return self

    def stop(self, timeout: float = 5) -> None:
        """Stop taking messages; give the ones being stored a moment to be acknowledged; disconnect."""
        self.stopping = True
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("the MQTT broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.topic, qos=1)
        self.connected.set()
        log.info("MQTT: subscribed to %s on %s:%s", self.topic, self.broker["host"], self.broker["port"])

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if not self.stopping:
            log.warning("MQTT: disconnected from the broker (%s); reconnecting", reason_code)

    # --- messages ---------------------------------------------------------------------------------

    def _on_message(self, client, _userdata, msg) -> None:
        self.stats["received"] += 1
        try:
            self._take(msg, 0)
        except Exception:  # a message must never stop the network thread
            log.exception("MQTT: a message on %s could not be handled", msg.topic)
            self._ack(msg)

    def _take(self, msg, attempt: int) -> None:
        levels = msg.topic.split("/")
        try:
            if len(levels) < 3:
                raise SmartCityError(f"the topic {msg.topic} is not owntracks/user/device", code="bad_topic")
            device = identifier(levels[1], levels[2])
            positions = []
            for message in parse(msg.payload):
                try:
                    positions.append(decode(message, device, PROTOCOL))
                except Ignored:
                    count(self.app, PROTOCOL, "ignored")
        except SmartCityError as exc:
            self._drop(msg, exc)
            return
        if not positions:
            self._ack(msg)
            return
        engine = engine_of(self.app)
        futures: list[Future] = []
        for position in positions:
            try:
                futures.append(engine.submit(position))
            except Overloaded:
                self._retry(msg, attempt)
                return
            except SmartCityError as exc:
                self._drop(msg, exc)
                return
        with self._idle:
            self._pending += 1
        remaining = [len(futures)]
        lock = threading.Lock()

        def done(future: Future) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if not last:
                return
            failed = next((f.exception() for f in futures if f.exception() is not None), None)
            if isinstance(failed, SmartCityError) and failed.status < 500:
                # Refused by the engine (the writer process validates when the position arrives there):
                # redelivery could not make it valid.
                self._drop(msg, failed)
            elif failed is None:
                for f in futures:
                    duplicate = f.result().duplicate
                    self.stats["duplicates" if duplicate else "stored"] += 1
                    count(self.app, PROTOCOL, "duplicate" if duplicate else "stored")
                self._ack(msg)
            else:
                log.error("MQTT: storing a position failed (%r); retrying", failed)
                self._retry(msg, attempt)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

        for f in futures:
            f.add_done_callback(done)

    def _drop(self, msg, exc: SmartCityError) -> None:
        self.stats["dropped"] += 1
        count(self.app, PROTOCOL, exc.code)
        log.warning("MQTT: dropped a message on %s: %s (%s)", msg.topic, exc.message, exc.code)
        self._ack(msg)

    def _retry(self, msg, attempt: int) -> None:
        if self.stopping:
            return  # not acknowledged: the broker redelivers it to the next session
        self.stats["retried"] += 1
        delay = min(0.2 * 2**attempt, 10)
        timer = threading.Timer(delay, self._take_again, args=(msg, attempt + 1))
        timer.daemon = True
        timer.start()

    def _take_again(self, msg, attempt: int) -> None:
        try:
            self._take(msg, attempt)
        except Exception:
            log.exception("MQTT: a message on %s could not be handled", msg.topic)
            self._ack(msg)

    def _ack(self, msg) -> None:
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)


def install(app) -> None:
    async def start(app) -> None:
        if not app.state.settings.mqtt_url:
            return
        app.state.mqtt_intake = MqttIntake(app).start()
        # Added while starting up, so it runs first when shutting down, before the engine's last flush.
        app.state.shutdown.append(stop)

    async def stop(app) -> None:
        import asyncio

        intake = getattr(app.state, "mqtt_intake", None)
        if intake is not None:
            await asyncio.to_thread(intake.stop)
            app.state.mqtt_intake = None

    app.state.startup.append(start)
