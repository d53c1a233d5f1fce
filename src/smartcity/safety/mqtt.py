"""OwnTracks over MQTT, through an external broker (Mosquitto or any MQTT 5 broker).

With `SMARTCITY_MQTT_URL` set (mqtt://user:password@host:1883, mqtts:// for TLS), each serving process
runs a paho-mqtt client subscribed to the filters of `SMARTCITY_MQTT_TOPIC` (owntracks/+/+ and
owntracks/+/+/event) at QoS 1. A message on owntracks/{user}/{device} (locations) or
owntracks/{user}/{device}/event (the app's region transitions) is decoded like OwnTracks over HTTP
(`owntracks.decode`) for the device registered as "{user}/{device}" for the owntracks protocol; the other
subtopics the app uses (cmd, info, waypoints, step…) carry no position and are acknowledged and skipped.
The broker authenticates MQTT clients (and its ACL keeps each to its own topic): no device secret here.

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

import asyncio
import contextlib
import functools
import logging
import threading
import uuid
from urllib.parse import unquote, urlsplit

from smartcity.core.errors import SmartCityError
from smartcity.safety.intake_api import count, engine_of, settle
from smartcity.safety.owntracks import Ignored, decode, identifier, parse
from smartcity.safety.settings import SafetySettings

log = logging.getLogger(__name__)
PROTOCOL = "mqtt"
READ_BATCH = 64  # MQTT packets read in one go when the broker's socket is readable
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps a named client's messages while it is away


def broker_of(url: str) -> dict:
    """host, port, username, password, tls from mqtt[s]://user:password@host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"SMARTCITY_MQTT_URL must look like mqtt://user:password@host:1883, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return {
        "host": parts.hostname,
        "port": parts.port or (8883 if tls else 1883),
        "tls": tls,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


class MqttIntake:
    """The process's OwnTracks MQTT subscriber: decode, submit, acknowledge once stored.

    paho's network loop runs in the serving process's event loop (paho's external-loop API: the socket is
    watched with add_reader/add_writer, `loop_misc` runs every second), not in a thread of its own. Messages
    are decoded, stored and acknowledged in the one thread that also reads the intake writer's answers: no
    interpreter lock handed back and forth, no wake-up of another thread per acknowledgment (measured: that
    hand-over cost more than paho's own parsing)."""

    def __init__(self, app):
        import paho.mqtt.client as paho

        self.app = app
        settings = app.state.settings.of(SafetySettings)
        self.broker = broker_of(settings.mqtt_url)
        self.topics = [t.strip() for t in settings.mqtt_topic.split(",") if t.strip()]
        self.persistent = bool(settings.mqtt_client_id)
        client_id = settings.mqtt_client_id or f"smartcity-{uuid.uuid4().hex[:12]}"
        self.inflight = max(1, settings.mqtt_inflight)
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=True
        )
        if self.broker["username"]:
            self.client.username_pw_set(self.broker["username"], self.broker["password"])
        if self.broker["tls"]:
            self.client.tls_set()
        self.client.max_inflight_messages_set(self.inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_socket_open = self._socket_open
        self.client.on_socket_close = self._socket_close
        self.client.on_socket_register_write = self._want_write
        self.client.on_socket_unregister_write = self._no_write
        self.connected = threading.Event()
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0  # messages being stored
        self._tasks: set[asyncio.Task] = set()
        self._arrived: list = []  # (message, positions) read in this turn of the event loop
        self._connector: asyncio.Task | None = None
        self._misc: asyncio.Task | None = None
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "dropped": 0, "retried": 0}

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> MqttIntake:
        """Connect in the background (called in the serving process's event loop); reconnects by itself."""
        self.loop = asyncio.get_running_loop()
        self._connector = self.loop.create_task(self._connect())
        return self

    async def stop(self, timeout: float = 5) -> None:
        """Stop taking messages; give the ones being stored a moment to be acknowledged; disconnect."""
        self.stopping = True
        if self._connector is not None:
            self._connector.cancel()
        deadline = self.loop.time() + timeout
        while self._pending and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        self.client.disconnect()
        self.client.loop_write()  # the DISCONNECT, now (the loop may not turn again for this socket)
        for task in list(self._tasks):
            task.cancel()  # still waiting: not acknowledged, so the broker keeps the message
        if self._misc is not None:
            self._misc.cancel()

    async def _connect(self, first: bool = True) -> None:
        """Connect; after a lost connection, again after 1 s, doubling to 60 s, until it succeeds."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        delay = 1.0
        while not self.stopping:
            if first:
                props = Properties(PacketTypes.CONNECT)
                props.ReceiveMaximum = min(self.inflight, 65535)
                if self.persistent:
                    props.SessionExpiryInterval = SESSION_EXPIRY_S
                connect = functools.partial(
                    self.client.connect,
                    self.broker["host"],
                    self.broker["port"],
                    keepalive=30,
                    clean_start=not self.persistent,
                    properties=props,
                )
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
                connect = self.client.reconnect  # the first connection's properties again
            try:
                # A blocking TCP (and TLS) connect: off the event loop. The socket callbacks it makes are handed
                # to the loop (`_in_loop`).
                await self.loop.run_in_executor(None, connect)
                return  # `_on_disconnect` starts this again when the connection is lost
            except (OSError, ValueError) as exc:
                if first:
                    log.warning(
                        "MQTT: cannot reach the broker at %s:%s (%s); retrying",
                        self.broker["host"],
                        self.broker["port"],
                        exc,
                    )
                first = False

    # --- paho's socket, on the event loop -----------------------------------------------------------

    def _in_loop(self, fn, *args) -> None:
        loop = self.loop
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            fn(*args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(fn, *args)

    def _socket_open(self, client, _userdata, sock) -> None:
        def watch():
            self.loop.add_reader(sock, self._readable)
            if self._misc is None or self._misc.done():
                self._misc = self.loop.create_task(self._housekeeping())

        self._in_loop(watch)

    def _readable(self) -> None:
        """Read what has arrived: paho's loop_read takes one packet a call, so call it again while it brings
        messages (at most a batch: the loop has other work), instead of going back to the selector each time."""
        import paho.mqtt.client as paho

        for _ in range(READ_BATCH):
            before = self.stats["received"]
            if self.client.loop_read() != paho.MQTT_ERR_SUCCESS or self.stats["received"] == before:
                return

    def _socket_close(self, _client, _userdata, sock) -> None:
        def unwatch():
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)

        self._in_loop(unwatch)

    def _want_write(self, client, _userdata, sock) -> None:
        self._in_loop(self.loop.add_writer, sock, client.loop_write)

    def _no_write(self, _client, _userdata, sock) -> None:
        self._in_loop(self.loop.remove_writer, sock)

    async def _housekeeping(self) -> None:
        """Keep-alive pings and ping time-outs (paho's loop_misc), once a second while connected."""
        import paho.mqtt.client as paho

        while self.client.loop_misc() == paho.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("the MQTT broker refused the connection: %s", reason_code)
            return
        client.subscribe([(topic, 1) for topic in self.topics])
        self.connected.set()
        log.info("MQTT: subscribed to %s on %s:%s", ", ".join(self.topics), self.broker["host"], self.broker["port"])

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if not self.stopping:
            log.warning("MQTT: disconnected from the broker (%s); reconnecting", reason_code)
            self._in_loop(self._reconnect)

    def _reconnect(self) -> None:
        if not self.stopping and (self._connector is None or self._connector.done()):
            self._connector = self.loop.create_task(self._connect(first=False))

    # --- messages ---------------------------------------------------------------------------------

    def _on_message(self, client, _userdata, msg) -> None:
        self.stats["received"] += 1
        try:
            positions = self._decode(msg)
        except Exception:  # a message must never stop the network loop
            log.exception("MQTT: a message on %s could not be handled", msg.topic)
            self._ack(msg)
            return
        if positions is None:
            return
        self._pending += 1
        # The messages read in one turn of the event loop go to the intake together, as one unit.
        self._arrived.append((msg, positions))
        if len(self._arrived) == 1:
            self.loop.call_soon(self._submit_arrived)

    def _submit_arrived(self) -> None:
        arrived, self._arrived = self._arrived, []
        if arrived:
            self._spawn(self._store_many(arrived))

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _decode(self, msg) -> list | None:
        """The message's positions, or None when it was dropped or held none (then acknowledged)."""
        levels = msg.topic.split("/")
        try:
            if len(levels) < 3:
                raise SmartCityError(f"the topic {msg.topic} is not owntracks/user/device", code="bad_topic")
            if len(levels) > 3 and levels[3:] != ["event"]:
                count(self.app, PROTOCOL, "ignored")  # cmd, info, waypoints…: nothing to store
                self._ack(msg)
                return None
            device = identifier(levels[1], levels[2])
            positions = []
            for message in parse(msg.payload):
                try:
                    positions.append(decode(message, device, PROTOCOL))
                except Ignored:
                    count(self.app, PROTOCOL, "ignored")
        except SmartCityError as exc:
            self._drop(msg, exc)
            return None
        if not positions:
            self._ack(msg)
            return None
        return positions

    async def _store_many(self, arrived: list) -> None:
        """Store the positions of several messages at once; each message is then settled by its own outcomes."""
        flat = [p for _msg, positions in arrived for p in positions]
        outcomes = await self._outcomes(flat)
        at = 0
        for msg, positions in arrived:
            mine, at = outcomes[at : at + len(positions)], at + len(positions)
            if self._settle(msg, mine):
                self._pending -= 1
            else:
                self._spawn(self._store(msg, positions, first=mine))

    def _settle(self, msg, outcomes: list) -> bool:
        """Acknowledge a message once all its positions are stored, drop it when one can never be stored (the
        engine refused it: redelivery could not make it valid); False when it should be tried again."""
        failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failed is None:
            for ack in outcomes:
                self.stats["duplicates" if ack.duplicate else "stored"] += 1
                count(self.app, PROTOCOL, "duplicate" if ack.duplicate else "stored")
            self._ack(msg)
            return True
        if isinstance(failed, SmartCityError) and failed.status < 500:
            self._drop(msg, failed)
            return True
        return False

    async def _outcomes(self, positions: list) -> list:
        """One outcome per position: an Ack, or the error that refused or failed it."""
        try:
            return await settle(engine_of(self.app), positions)
        except Exception as exc:  # noqa: BLE001 - e.g. the writer could not be started: retried
            return [exc] * len(positions)

    async def _store(self, msg, positions: list, first: list) -> None:
        """Try a message again, with a back-off (unacknowledged meanwhile), while the intake is overloaded or the
        store fails; `first` is the outcome of the first try."""
        outcomes, attempt = first, 0
        try:
            while not self._settle(msg, outcomes):
                if self.stopping:
                    return  # not acknowledged: the broker redelivers it to the next session
                failed = next(o for o in outcomes if isinstance(o, BaseException))
                log.error("MQTT: storing a position failed (%r); retrying", failed)
                self.stats["retried"] += 1
                await asyncio.sleep(min(0.2 * 2**attempt, 10))
                attempt += 1
                outcomes = await self._outcomes(positions)
        finally:
            self._pending -= 1

    def _drop(self, msg, exc: SmartCityError) -> None:
        self.stats["dropped"] += 1
        count(self.app, PROTOCOL, exc.code)
        log.warning("MQTT: dropped a message on %s: %s (%s)", msg.topic, exc.message, exc.code)
        self._ack(msg)

    def _ack(self, msg) -> None:
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)


def install(app) -> None:
    async def start(app) -> None:
        if not app.state.settings.of(SafetySettings).mqtt_url:
            return
        app.state.mqtt_intake = MqttIntake(app).start()
        # Added while starting up, so it runs first when shutting down, before the engine's last flush.
        app.state.shutdown.append(stop)

    async def stop(app) -> None:
        intake = getattr(app.state, "mqtt_intake", None)
        if intake is not None:
            await intake.stop()
            app.state.mqtt_intake = None

    app.state.startup.append(start)
