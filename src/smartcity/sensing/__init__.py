"""City sensing (u-Seoul Net, issue 16's first slice): sensors as assets of kind `sensor`, their readings in
through core's intake pipeline (HTTP batch, MQTT, S-DoT exports), refusals recorded with their reasons, hourly
and daily roll-ups kept while raw readings are pruned after a retention period. See docs/sensing.md.

CLI: `smartcity sensing import-sensors FILE`, `smartcity sensing import-readings FILE`, `smartcity sensing rollup`.
"""

from __future__ import annotations

from smartcity.core.jobs import Job
from smartcity.core.module import Module, NavLink
from smartcity.core.mqtt import Subscription
from smartcity.sensing.settings import SensingSettings


def _rollup(db, settings) -> None:
    from smartcity.sensing.rollup import job

    job(db, settings)


def _air_alerts(db, settings) -> None:
    from smartcity.sensing.air import job

    job(db, settings)


def _maintenance(db, settings) -> None:
    from smartcity.sensing.maintenance import job

    job(db, settings)


def _ngsi_notify(db, settings) -> None:
    from smartcity.sensing.ngsi_subscriptions import job

    job(db, settings)


def _demo(db, profile):
    """Synthetic sensors and their last day of readings (made up; real lists are imported, never shipped)."""
    from smartcity.sensing.demo import load

    yield load(db, profile)


def _setup(app, context) -> None:
    """Stop the intake's writer (after what it holds is written) when the app shuts down."""
    from smartcity.sensing.intake import INTAKE

    async def stop(app) -> None:
        intake = context.slots.pop(INTAKE, None)
        if intake is not None:
            intake.stop()

    app.state.metrics.watch_queue("sensing.readings", lambda: getattr(context.slots.get(INTAKE), "queued", 0))
    app.state.shutdown.append(stop)


module = Module(
    name="sensing",
    audit="smartcity.sensing.audit_words:WORDS",
    routers=(
        "smartcity.sensing.api:router",
        "smartcity.sensing.pages:router",
        "smartcity.sensing.ngsi_api:router",
        "smartcity.sensing.ngsi_temporal:router",
        "smartcity.sensing.ngsi_subscriptions:router",
        "smartcity.sensing.wifi_api:router",
    ),
    # Sensors and gateways send with an API key of a staff account; administrators hold both.
    permissions={"sensing.submit": ("staff",), "sensing.manage": ("staff",), "sensing.maintain": ("staff",)},
    jobs=(
        Job("sensing.rollup", 300, _rollup),
        # Their intervals are settings (air_alerts_every_s, maintenance_every_s): a short tick, gated in the job.
        Job("sensing.air_alerts", 10, _air_alerts),
        Job("sensing.maintenance", 10, _maintenance),
        Job("sensing.ngsi_notify", 2, _ngsi_notify),
    ),
    nav=(
        NavLink("Air quality", "/air"),
        NavLink("Sensor maintenance", "/staff/sensing/maintenance", "sensing.maintain"),
    ),
    settings=SensingSettings,
    mqtt=(
        Subscription(
            "sensing",
            broker="smartcity.sensing.mqtt:broker",
            topics="smartcity.sensing.mqtt:topics",
            handler="smartcity.sensing.mqtt:ReadingsOverMqtt",
        ),
    ),
    cli="smartcity.sensing.cli:commands",
    setup=_setup,
    demo=_demo,
    models="smartcity.sensing.models",
)
