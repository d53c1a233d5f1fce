"""Safety service (u-Seoul): live location, safe and danger zones, SOS for children, elderly people and
people with dementia — for their guardians and the district CCTV control rooms.

Pieces: models.py (tables), engine.py (the intake hot path), service.py (registry, alerts, incidents,
privacy-checked reads, jobs), protocol adapters (osmand.py, owntracks.py, mqtt.py, intake_api.py), pages and
JSON (pages.py, api.py), cli.py. `module` below is what the service declares to core. See docs/safety-service.md.
"""

from __future__ import annotations

from smartcity.core.i18n import N_
from smartcity.core.jobs import Job
from smartcity.core.module import Module, NavLink, PersonalTopic, Role, call, only
from smartcity.core.mqtt import Subscription
from smartcity.safety.settings import SafetySettings


def _live_admission(db, identity, event):
    from smartcity.safety.service import live_admission

    return live_admission(db, identity, event)


def _live_subject(event) -> tuple[str, object]:
    return "safety_person", event.data.get("person_id")


def _setup(app, context) -> None:
    """The intake engine starts and stops with the app; the adapters add their listeners and error formats."""
    from smartcity.safety.engine import get_engine, queued, stop_engine

    app.state.metrics.watch_queue("safety.positions", lambda: queued(context.db))
    for adapter in ("osmand", "owntracks", "simulate"):
        call(f"smartcity.safety.{adapter}:install", app)

    async def start_engine(app) -> None:
        get_engine(context.db, context.settings, context.profile)

    async def end_engine(app) -> None:
        stop_engine(context.db)

    app.state.startup.append(start_engine)
    app.state.shutdown.append(end_engine)


def _job(name: str, function: str, every: float) -> Job:
    """A job running the service's `function(db, settings)`."""

    def run(db, settings):
        from smartcity.safety import service

        return getattr(service, function)(db, settings)

    return Job(name, every, run)


def _demo(db, profile):
    from smartcity.core.accounts import NewUser
    from smartcity.core.demo import DEMO_PASSWORD, add_accounts, demo_district
    from smartcity.safety.service import demo as run
    from smartcity.safety.simulate import demo as recent_past

    yield from add_accounts(
        db,
        [
            NewUser("guardian", DEMO_PASSWORD, "guardian", "박서연", phone="010-0000-0000"),
            NewUser("operator", DEMO_PASSWORD, "operator", "최현우", department=f"{demo_district(profile)}-control"),
        ],
    )
    yield from run(db, profile)
    yield from recent_past(db, profile)  # the demo devices' last minutes: a path and an open emergency


module = Module(
    name="safety",
    audit="smartcity.safety.audit_words:WORDS",
    routers=tuple(f"smartcity.safety.{name}:router" for name in ("intake_api", "osmand", "owntracks", "api", "pages")),
    roles=(
        Role("guardian", N_("Guardian: follows the people in their care")),
        Role("operator", N_("Control-room operator: handles incidents in their district"), unit_kind="control_room"),
    ),
    unit_kinds={"control_room": N_("A district's CCTV control room")},
    permissions={
        "safety.guard": ("guardian",),
        "safety.operate": ("operator",),
        # A guardian's bond to their wards and an operator's seat in a control room are their own: granted
        # with only(), administrators do not hold them (they may manage the registry, not follow anyone).
        "safety.ward": only("guardian"),
        "safety.control_room": only("operator"),
        "safety.manage": (),  # administrators only (they hold every permission)
        "safety.intake": (),
    },  # administrators; gateways use system keys of scope `safety.gateway`
    nav=(
        NavLink(N_("My wards"), "/safety/guardian", "safety.guard"),
        NavLink(N_("Control room"), "/safety/console", "safety.operate"),
        NavLink(N_("Consents"), "/safety/consents", "safety.manage"),
    ),
    # Live positions, alerts and incidents are a person's whereabouts: the event stream applies the REST reads' rule.
    personal=tuple(
        PersonalTopic(topic, _live_admission, _live_subject)
        for topic in ("safety.position", "safety.alert", "safety.incident.")
    ),
    jobs=(
        _job("safety.retention", "purge_history", 3600),
        _job("safety.silent", "check_silent", 60),
        _job("safety.alert_digests", "send_alert_digests", 60),
        _job("safety.absence", "check_absence", 60),
    ),
    settings=SafetySettings,
    setup=_setup,
    # OwnTracks over MQTT, when SMARTCITY_MQTT_URL names a broker.
    mqtt=(
        Subscription(
            "owntracks",
            broker="smartcity.safety.mqtt:broker",
            topics="smartcity.safety.mqtt:topics",
            handler="smartcity.safety.mqtt:OwnTracksOverMqtt",
        ),
    ),
    cli="smartcity.safety.cli:cli",
    demo=_demo,
    models="smartcity.safety.models",
)
