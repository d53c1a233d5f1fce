"""MQTT intake as infrastructure: one client per broker and serving process, shared by every module that
subscribes through its declaration (Mosquitto or any MQTT 5 broker).

A module declares what it takes from MQTT, and core connects, subscribes, reads and acknowledges:

    module = Module(..., mqtt=(Subscription("owntracks", broker="pkg.mqtt:broker", topics="pkg.mqtt:topics",
                                            handler="pkg.mqtt:Handler"),))

`broker(context)` gives the `Broker` (from the module's settings; None: off), `topics(context)` the topic
filters (subscribed at QoS 1), `handler(app)` makes the handler once per app. Subscriptions naming the same
broker URL share one client. The handler is called with the messages of one filter read in one turn of the
event loop (paho `MQTTMessage`s: `.topic`, `.payload`) and returns, per message, what became of it:

    None                       done (stored, or nothing to store): acknowledged
    SmartCityError, status<500 never storable (bad payload, unknown device…): acknowledged and dropped
    any other exception        not stored yet (overloaded, the store failed): retried after a back-off
                               (0.2 s doubling to 10 s), acknowledged only once done

"Durably stored" over MQTT: the client acknowledges messages by hand (paho's manual_ack). The PUBACK of a QoS 1
message goes to the broker only after the handler said it was done, so a message the platform had not stored
when it stopped is still the broker's (redelivered on reconnection when the client id keeps a persistent
session). MQTT 5's Receive Maximum (`Broker.inflight`) lets the broker keep that many messages in flight while
they are being stored. The client reconnects by itself with a back-off of 1 s doubling to 60 s; nothing a
device sends can stop it. The broker authenticates clients (its ACL keeps each device to its own topic).

paho's network loop runs in the serving process's event loop (paho's external-loop API: the socket is watched
with add_reader/add_writer, `loop_misc` runs every second), not in a thread of its own: messages are decoded,
handed on and acknowledged in the one thread that also reads the intake writer's answers (measured: a thread
hand-over per acknowledgment cost more than paho's own parsing).

The app keeps its clients in `app.state.mqtt_clients` (broker URL → `MqttClient`); each counts what it did in
`stats` (received, acknowledged, dropped, retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from smartcity.core.errors import SmartCityError

log = logging.getLogger(__name__)

READ_BATCH = 64  # MQTT packets read in one go when the broker's socket is readable
SESSION_EXPIRY_S = 7 * 24 * 3600  # how long the broker keeps a named client's messages while it is away
QOS = 1

Handler = Callable[[list], Awaitable[list]]  # messages of one read → one outcome per message


@dataclass(frozen=True)
class Broker:
    """Where to connect: mqtt[s]://user:password@host:port; `client_id` set: a persistent session;
    `inflight`: messages the broker may keep in flight to this client (MQTT 5 Receive Maximum)."""

    url: str
    client_id: str = ""
    inflight: int = 100


@dataclass(frozen=True)
class Subscription:
    """What a module takes from MQTT (see the module's docstring); references may be "pkg.mod:attr" paths."""

    name: str
    broker: Any  # fn(context) -> Broker | None
    topics: Any  # fn(context) -> list of topic filters
    handler: Any  # fn(app) -> Handler


def broker_of(url: str) -> dict:
    """host, port, username, password, tls from mqtt[s]://user:password@host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"an MQTT broker URL looks like mqtt://user:password@host:1883, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return {
        "host": parts.hostname,
        "port": parts.port or (8883 if tls else 1883),
        "tls": tls,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def routed_filter(topic: str) -> str:
    """The filter a message's own topic is matched against: a shared subscription ($share/group/filter, which
    splits messages between the clients of a group) delivers messages under their topic, matched by `filter`."""
    if topic.startswith("$share/"):
        parts = topic.split("/", 2)
        return parts[2] if len(parts) == 3 else topic
    return topic


class MqttClient:
    """One broker connection of the serving process: subscribes each route's filters, hands what arrives to
    the route's handler, acknowledges once the handler is done."""

    def __init__(self, broker: Broker, routes: Sequence[tuple[str, list[str], Handler]]):
        import paho.mqtt.client as paho

        self.broker = broker_of(broker.url)
        self.persistent = bool(broker.client_id)
        self.inflight = max(1, broker.inflight)
        self.routes = [(name, list(topics), handler) for name, topics, handler in routes]
        client_id = broker.client_id or f"smartcity-{uuid.uuid4().hex[:12]}"
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=True
        )
        if self.broker["username"]:
            self.client.username_pw_set(self.broker["username"], self.broker["password"])
        if self.broker["tls"]:
            self.client.tls_set()
        self.client.max_inflight_messages_set(self.inflight)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._unrouted
        self.client.on_socket_open = self._socket_open
        self.client.on_socket_close = self._socket_close
        self.client.on_socket_register_write = self._want_write
        self.client.on_socket_unregister_write = self._no_write
        for index, (_name, topics, _handler) in enumerate(self.routes):
            for topic in topics:
                self.client.message_callback_add(routed_filter(topic), functools.partial(self._on_message, index))
        # Set once the broker has acknowledged the subscriptions (SUBACK), not at the connection: a message
        # published between the two is not delivered to a clean session (CI, stop 25: a test's OwnTracks
        # messages sent after CONNACK never arrived).
        self.connected = threading.Event()
        self._subscribing: int | None = None  # the SUBSCRIBE's message id, until its SUBACK
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0  # messages handed on and not yet acknowledged
        self._tasks: set[asyncio.Task] = set()
        self._arrived: dict[int, list] = {}  # route → messages read in this turn of the event loop
        self._connector: asyncio.Task | None = None
        self._misc: asyncio.Task | None = None
        self.stats = {"received": 0, "acknowledged": 0, "dropped": 0, "retried": 0}

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> MqttClient:
        """Connect in the background (called in the serving process's event loop); reconnects by itself."""
        self.loop = asyncio.get_running_loop()
        self._connector = self.loop.create_task(self._connect())
        return self

    async def stop(self, timeout: float = 5) -> None:
        """Stop taking messages; give the ones being handled a moment to be acknowledged; disconnect."""
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
        topics = [topic for _name, filters, _handler in self.routes for topic in filters]
        if not topics:
            self.connected.set()
            return
        _result, self._subscribing = client.subscribe([(topic, QOS) for topic in topics])

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _properties) -> None:
        if mid != self._subscribing:
            return
        self._subscribing = None
        topics = [topic for _name, filters, _handler in self.routes for topic in filters]
        refused = [topic for topic, code in zip(topics, reason_codes, strict=False) if code.is_failure]
        if refused:
            log.error("the MQTT broker refused the subscriptions to %s", ", ".join(refused))
        self.connected.set()
        log.info("MQTT: subscribed to %s on %s:%s", ", ".join(topics), self.broker["host"], self.broker["port"])

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if not self.stopping:
            log.warning("MQTT: disconnected from the broker (%s); reconnecting", reason_code)
            self._in_loop(self._reconnect)

    def _reconnect(self) -> None:
        if not self.stopping and (self._connector is None or self._connector.done()):
            self._connector = self.loop.create_task(self._connect(first=False))

    # --- messages ---------------------------------------------------------------------------------

    def _unrouted(self, _client, _userdata, msg) -> None:
        """A message no filter of ours matches (a session's leftover subscription): acknowledged, dropped."""
        self.stats["received"] += 1
        self.stats["dropped"] += 1
        log.warning("MQTT: dropped a message on %s: no subscription takes it", msg.topic)
        self._ack(msg)

    def _on_message(self, route: int, _client, _userdata, msg) -> None:
        self.stats["received"] += 1
        self._pending += 1
        # The messages of a route read in one turn of the event loop go to its handler together.
        arrived = self._arrived.setdefault(route, [])
        arrived.append(msg)
        if len(arrived) == 1:
            self.loop.call_soon(self._hand_on, route)

    def _hand_on(self, route: int) -> None:
        messages = self._arrived.pop(route, [])
        if messages:
            self._spawn(self._handle(route, messages))

    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _outcomes(self, route: int, messages: list) -> list:
        name, _topics, handler = self.routes[route]
        try:
            outcomes = await handler(messages)
        except Exception as exc:  # noqa: BLE001 - a handler's failure is a retry, never the loop's end
            log.exception("MQTT: the %s handler failed", name)
            return [exc] * len(messages)
        if len(outcomes) != len(messages):
            raise RuntimeError(f"the {name} handler gave {len(outcomes)} outcomes for {len(messages)} messages")
        return outcomes

    async def _handle(self, route: int, messages: list) -> None:
        outcomes = await self._outcomes(route, messages)
        for msg, outcome in zip(messages, outcomes, strict=True):
            if self._settle(route, msg, outcome):
                self._pending -= 1
            else:
                self._spawn(self._retry(route, msg, outcome))

    def _settle(self, route: int, msg, outcome) -> bool:
        """Acknowledge a message that is done or can never be; False when it should be tried again."""
        if outcome is None:
            self.stats["acknowledged"] += 1
            self._ack(msg)
            return True
        if isinstance(outcome, SmartCityError) and outcome.status < 500:
            self.stats["dropped"] += 1
            log.warning("MQTT: dropped a message on %s: %s (%s)", msg.topic, outcome.message, outcome.code)
            self._ack(msg)
            return True
        return False

    async def _retry(self, route: int, msg, outcome) -> None:
        """Hand a message on again, with a back-off (unacknowledged meanwhile), until it is done."""
        attempt = 0
        try:
            while not self._settle(route, msg, outcome):
                if self.stopping:
                    return  # not acknowledged: the broker redelivers it to the next session
                log.error("MQTT: a message on %s is not stored yet (%r); retrying", msg.topic, outcome)
                self.stats["retried"] += 1
                await asyncio.sleep(min(0.2 * 2**attempt, 10))
                attempt += 1
                outcome = (await self._outcomes(route, [msg]))[0]
        finally:
            self._pending -= 1

    def _ack(self, msg) -> None:
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)


def install(app, context, modules) -> None:
    """Start, with the app, one client per broker the modules' subscriptions name (and stop them first, before
    anything the handlers hand on to is stopped)."""
    from smartcity.core.module import resolve

    subscriptions = [(m, s) for m in modules for s in m.mqtt]
    if not subscriptions:
        return
    app.state.mqtt_clients = {}

    async def start(app) -> None:
        by_broker: dict[Broker, list] = {}
        for module, sub in subscriptions:
            broker = resolve(sub.broker)(context)
            if broker is None or not broker.url:
                continue
            handler = resolve(sub.handler)(app)
            route = (f"{module.name}.{sub.name}", list(resolve(sub.topics)(context)), handler)
            by_broker.setdefault(broker, []).append(route)
        for broker, routes in by_broker.items():
            app.state.mqtt_clients[broker.url] = MqttClient(broker, routes).start()
        if by_broker:
            # Added while starting up, so it runs first when shutting down, before the modules' own stops.
            app.state.shutdown.append(stop)

    async def stop(app) -> None:
        clients, app.state.mqtt_clients = app.state.mqtt_clients, {}
        for client in clients.values():
            await client.stop()

    app.state.startup.append(start)
