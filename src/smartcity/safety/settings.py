"""The safety service's settings: SMARTCITY_SAFETY_<FIELD> (the location listeners keep their own names,
SMARTCITY_OSMAND_PORT and SMARTCITY_MQTT_*). Declared in `smartcity.safety.module`; read through
`Settings.of(SafetySettings)` or the app's context (`context.settings_of(SafetySettings)`)."""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.settings import setting


@dataclass(frozen=True)
class SafetySettings:
    retention_days: int = setting(30, "Days a protected person's location history is kept before it is purged.")
    future_tolerance_s: int = setting(300, "Positions timed more than this many seconds ahead are refused.")
    outside_city: str = setting(
        "flag",
        "Positions outside the city: flag (store them, mark them, alert guardians once) or refuse (protocol error).",
        choices=("flag", "refuse"),
    )
    low_battery: int = setting(15, "Battery percentage at or below which guardians get a low-battery alert.")
    silent_minutes: int = setting(30, "Minutes without a position after which a device counts as silent.")
    absence_grace_minutes: int = setting(
        30, "Minutes after a scheduled zone's window opens before an absent person is reported (08:30 → 09:00)."
    )
    confirm_fixes: int = setting(2, "Consecutive fixes that must agree before a zone arrival/departure counts.")
    hysteresis_m: int = setting(
        30, "Metres beyond a zone's edge (at least; or 20 % of its size) a fix must be before a departure counts."
    )
    accuracy_max_m: int = setting(150, "Fixes less precise than this (metres) never change zone states.")
    alert_cooldown_minutes: int = setting(
        10,
        "At most one arrival or departure alert per person, zone and direction within this many minutes; later "
        "ones are folded into a digest (sent when the period ends, or with the next alert). 0: no cool-down.",
    )
    batch_size: int = setting(1000, "Most positions written in one transaction by the intake writer.")
    batch_ms: int = setting(2, "Milliseconds an idle intake writer waits to fill a batch before committing.")
    writer: str = setting(
        "process",
        "Where the safety intake writes positions: `process` (a writer process of its own beside each "
        "serving process, so storing does not share the web server's interpreter lock) or `thread` (in the serving "
        "process).",
        choices=("process", "thread"),
    )
    writers: int = setting(
        1,
        "Writer processes of the safety intake (with SAFETY_WRITER=process): each device belongs to one, chosen by a "
        "stable hash of its identifier, so no two writers touch the same device's state. More than one pays on "
        "PostgreSQL, where they commit in parallel; SQLite has one writer at a time.",
    )
    queue_max: int = setting(200_000, "Positions the intake may hold waiting to be written before refusing.")
    staging_max_behind: int = setting(
        2_000_000,
        "SQLite: positions the staging table may hold (not yet moved into the history) before the intake answers "
        "503 with Retry-After to ordinary positions (alarms are still taken); bounds the table when the mover "
        "falls behind.",
    )
    staging_chunk_ms: int = setting(
        50,
        "SQLite: milliseconds one chunk of the staging mover should hold the write lock (its rows adapt to it), "
        "so that a large backlog never keeps the intake writer waiting longer.",
    )
    state_checkpoint_s: float = setting(
        30.0,
        "Seconds between writes of a moved device's live state row when no zone or flag of it changed (readers take "
        "the newest stored position; after a crash the positions since the row are replayed).",
    )
    live_positions: bool = setting(
        True, "Publish each device's newest position per batch as a live event to guardians (and open incidents)."
    )
    simulate: bool = setting(
        False,
        "Move the demo's simulated devices through the city while serving, with an emergency now and then "
        "(`smartcity demo` turns it on). One serving process only.",
    )
    # --- location intake (osmand.py, owntracks.py, mqtt.py, intake_api.py) ---
    # The listeners' variables keep the names deployments already set (SMARTCITY_OSMAND_PORT, SMARTCITY_MQTT_*).
    osmand_port: int = setting(
        5055,
        "Port of the OsmAnd listener for Traccar Client phones (on SMARTCITY_HOST, beside the web server); "
        "0: off. The protocol is also served at /osmand on the web server's port.",
        env="SMARTCITY_OSMAND_PORT",
        listens=True,
    )
    device_max_bytes: int = setting(
        256 * 1024, "Largest body a device may send (OsmAnd, OwnTracks over HTTP), in bytes; larger: 413."
    )
    gateway_max_positions: int = setting(
        10_000, "Most positions in one request to the gateway batch endpoint (POST /api/safety/positions)."
    )
    gateway_max_bytes: int = setting(
        16 * 1024 * 1024, "Largest body of one gateway batch request, in bytes; larger: 413."
    )
    mqtt_url: str = setting(
        "",
        "MQTT broker to take OwnTracks positions from: mqtt://user:password@host:1883 (mqtts:// for TLS). Empty: off.",
        env="SMARTCITY_MQTT_URL",
    )
    mqtt_topic: str = setting(
        "owntracks/+/+,owntracks/+/+/event",
        "Topic filters to subscribe to, comma-separated: "
        "owntracks/{user}/{device} carries a device's locations, owntracks/{user}/{device}/event its region "
        "transitions. Several serving processes: $share/smartcity/owntracks/+/+,$share/smartcity/owntracks/+/+/event "
        "(shared subscriptions) split them.",
        env="SMARTCITY_MQTT_TOPIC",
    )
    mqtt_client_id: str = setting(
        "",
        "MQTT client id. Set one to keep a persistent session (the broker holds messages while the platform is "
        "down); empty: a random id and a clean session.",
        env="SMARTCITY_MQTT_CLIENT_ID",
    )
    mqtt_inflight: int = setting(
        1000,
        "Messages the broker may have in flight to the platform before their storage is acknowledged "
        "(MQTT 5 Receive Maximum).",
        env="SMARTCITY_MQTT_INFLIGHT",
    )
