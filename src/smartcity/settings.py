"""Every setting of the platform, declared once as data and read from SMARTCITY_* environment variables.

A setting has a name, a type, a default and help text; `smartcity settings` prints them all.
A module declares its own settings the same way (a dataclass of `setting(...)` fields, read from
SMARTCITY_<MODULE>_<NAME> by `read_env`). The app reads them once and hands them to the services
(`core.context.AppContext`); nothing else reads the environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path


def setting(default, help: str):
    """A setting's declaration: its default and what it means."""
    return field(default=default, metadata={"help": help})


def read_env(cls, prefix: str, env: Mapping[str, str] | None = None):
    """An instance of the settings dataclass `cls` from the environment variables `prefix` + FIELD."""
    env = os.environ if env is None else env
    values = {}
    for f in fields(cls):
        raw = env.get(prefix + f.name.upper())
        if raw is None:
            continue
        if f.type in ("int", int):
            values[f.name] = int(raw)
        elif f.type in ("float", float):
            values[f.name] = float(raw)
        elif f.type in ("bool", bool):
            values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            values[f.name] = raw
    return cls(**values)


def describe_class(cls, prefix: str) -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every field of the settings dataclass `cls`."""
    return [(prefix + f.name.upper(), str(f.default), f.metadata.get("help", "")) for f in fields(cls)]


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        "sqlite:///var/smartcity.db",
        "SQLAlchemy URL of the store. SQLite (WAL) is the embedded default; "
        "postgresql+psycopg://user@host/db for a city that outgrows one machine.",
    )
    city: str = setting("seoul", "City profile: a bundled name (seoul) or the path of a profile TOML file.")
    secret_key: str = setting("", "Key that signs session cookies. Empty: one is generated and kept in var/secret_key.")
    host: str = setting("127.0.0.1", "Address `smartcity serve` listens on.")
    port: int = setting(8000, "Port of the web server.")
    tile_url: str = setting(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "Base-map tile URL template; empty for no base map (district outlines still show).",
    )
    tile_attribution: str = setting("© OpenStreetMap contributors", "Attribution shown for the base map.")
    var_dir: str = setting("var", "Folder for the embedded database, uploads and generated secrets.")
    session_max_age: int = setting(14 * 24 * 3600, "Seconds a sign-in lasts.")
    secure_cookies: bool = setting(False, "Mark cookies Secure (set behind HTTPS).")
    log_level: str = setting("info", "Log level of the server.")
    email_channel: str = setting("log", "How email notifications leave: log (kept in the outbox only) or smtp.")
    smtp_host: str = setting("127.0.0.1", "SMTP server for email notifications.")
    smtp_port: int = setting(25, "SMTP port.")
    smtp_user: str = setting("", "SMTP user name (empty: no authentication).")
    smtp_password: str = setting("", "SMTP password.")
    smtp_starttls: bool = setting(False, "Use STARTTLS with the SMTP server.")
    mail_from: str = setting("smartcity@localhost", "Sender address of notification emails.")
    sms_gateway_url: str = setting(
        "", "SMS gateway endpoint: a JSON POST {to, text} per message. Empty: SMS are kept in the outbox only."
    )
    sms_gateway_token: str = setting("", "Bearer token for the SMS gateway.")
    modules: str = setting(
        "",
        "Modules to load, comma-separated import paths (package, or package:attribute of its Module "
        "declaration). Empty: every module bundled in the smartcity package and every one installed under the "
        "smartcity.modules entry-point group.",
    )
    run_jobs: bool = setting(True, "Run scheduled jobs (notification delivery, retention purges) in this process.")
    # --- safety service ---
    safety_retention_days: int = setting(30, "Days a protected person's location history is kept before it is purged.")
    safety_future_tolerance_s: int = setting(300, "Positions timed more than this many seconds ahead are refused.")
    safety_outside_city: str = setting(
        "flag",
        "Positions outside the city: flag (store them, mark them, alert guardians once) or refuse (protocol error).",
    )
    safety_low_battery: int = setting(15, "Battery percentage at or below which guardians get a low-battery alert.")
    safety_silent_minutes: int = setting(30, "Minutes without a position after which a device counts as silent.")
    safety_absence_grace_minutes: int = setting(
        30, "Minutes after a scheduled zone's window opens before an absent person is reported (08:30 → 09:00)."
    )
    safety_confirm_fixes: int = setting(2, "Consecutive fixes that must agree before a zone arrival/departure counts.")
    safety_hysteresis_m: int = setting(
        30, "Metres beyond a zone's edge (at least; or 20 % of its size) a fix must be before a departure counts."
    )
    safety_accuracy_max_m: int = setting(150, "Fixes less precise than this (metres) never change zone states.")
    safety_alert_cooldown_minutes: int = setting(
        10,
        "At most one arrival or departure alert per person, zone and direction within this many minutes; later "
        "ones are folded into a digest (sent when the period ends, or with the next alert). 0: no cool-down.",
    )
    safety_batch_size: int = setting(1000, "Most positions written in one transaction by the intake writer.")
    safety_batch_ms: int = setting(2, "Milliseconds an idle intake writer waits to fill a batch before committing.")
    safety_writer: str = setting(
        "process",
        "Where the safety intake writes positions: `process` (a writer process of its own beside each "
        "serving process, so storing does not share the web server's interpreter lock) or `thread` (in the serving "
        "process).",
    )
    safety_queue_max: int = setting(200_000, "Positions the intake may hold waiting to be written before refusing.")
    safety_live_positions: bool = setting(
        True, "Publish each device's newest position per batch as a live event to guardians (and open incidents)."
    )
    safety_simulate: bool = setting(
        False,
        "Move the demo's simulated devices through the city while serving, with an emergency now and then "
        "(`smartcity demo` turns it on). One serving process only.",
    )
    # --- safety service: location intake (osmand.py, owntracks.py, mqtt.py, intake_api.py) ---
    osmand_port: int = setting(
        5055,
        "Port of the OsmAnd listener for Traccar Client phones (on SMARTCITY_HOST, beside the web server); "
        "0: off. The protocol is also served at /osmand on the web server's port.",
    )
    safety_device_max_bytes: int = setting(
        256 * 1024, "Largest body a device may send (OsmAnd, OwnTracks over HTTP), in bytes; larger: 413."
    )
    safety_gateway_max_positions: int = setting(
        10_000, "Most positions in one request to the gateway batch endpoint (POST /api/safety/positions)."
    )
    safety_gateway_max_bytes: int = setting(
        16 * 1024 * 1024, "Largest body of one gateway batch request, in bytes; larger: 413."
    )
    mqtt_url: str = setting(
        "",
        "MQTT broker to take OwnTracks positions from: mqtt://user:password@host:1883 (mqtts:// for TLS). Empty: off.",
    )
    mqtt_topic: str = setting(
        "owntracks/+/+,owntracks/+/+/event",
        "Topic filters to subscribe to, comma-separated: "
        "owntracks/{user}/{device} carries a device's locations, owntracks/{user}/{device}/event its region "
        "transitions. Several serving processes: $share/smartcity/owntracks/+/+,$share/smartcity/owntracks/+/+/event "
        "(shared subscriptions) split them.",
    )
    mqtt_client_id: str = setting(
        "",
        "MQTT client id. Set one to keep a persistent session (the broker holds messages while the platform is "
        "down); empty: a random id and a clean session.",
    )
    mqtt_inflight: int = setting(
        1000,
        "Messages the broker may have in flight to the platform before their storage is acknowledged "
        "(MQTT 5 Receive Maximum).",
    )

    # --- community mapping (reports) ---
    reports_public_url: str = setting(
        "http://127.0.0.1:8000", "Public base URL of the site, for links in report notifications and feeds."
    )
    reports_allow_anonymous: bool = setting(
        True, "Let people report without signing in (as FixMyStreet does); contact details stay optional."
    )
    reports_max_photos: int = setting(6, "Most photos one report may carry.")
    reports_max_photo_bytes: int = setting(10 * 1024 * 1024, "Largest photo upload accepted, in bytes.")
    reports_fetch_media_urls: bool = setting(
        False,
        "Fetch the photos behind a partner's Open311 media_url in the background (public addresses only, "
        "images only, at most reports_max_photo_bytes). Off: the links are kept and shown as given.",
    )
    reports_fetch_media_allow: str = setting(
        "",
        "Networks (comma-separated CIDR, e.g. 10.20.0.0/16) a media_url may be fetched from although private: "
        "a partner FixMyStreet on the city's own network. Empty: public addresses only.",
    )
    reports_fallback_unit: str = setting(
        "dasan120", "Unit that receives reports no routing rule or default unit covers (Seoul: 120 Dasan)."
    )
    open311_cors_origins: str = setting(
        "*",
        "Origins whose browser apps may call the Open311 API (comma-separated, * for any; empty: none). "
        "No cookies cross origins: reads are public and POST carries its api_key.",
    )
    reports_contact_retention_days: int = setting(
        365, "Days after a report is closed before the reporter's contact details are deleted."
    )

    CHOICES = {"safety_outside_city": ("flag", "refuse"), "safety_writer": ("process", "thread")}

    def __post_init__(self) -> None:
        for name, allowed in self.CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"SMARTCITY_{name.upper()} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        return read_env(cls, "SMARTCITY_", env)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def signing_key(self) -> str:
        """The session signing key: the configured one, or one generated once and kept in var/."""
        if self.secret_key:
            return self.secret_key
        path = Path(self.var_dir) / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting of the core."""
    return describe_class(Settings, "SMARTCITY_")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
