"""The sensing module's settings: SMARTCITY_SENSING_<FIELD>. Declared in `smartcity.sensing.module`; services
read them from their store's context (`context_of(db).settings_of(SensingSettings)`)."""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.settings import setting


@dataclass(frozen=True)
class SensingSettings:
    raw_retention_days: int = setting(
        30,
        "Days a sensor's raw readings are kept; older ones are pruned by the sensing.rollup job once rolled up "
        "into the hourly and daily aggregates, which are kept. A reading older than this is refused as too old.",
    )
    future_tolerance_s: int = setting(
        300,
        "How far ahead of the server's clock a reading's time may be (a sensor's clock running fast); later "
        "ones are refused as in the future.",
    )
    mqtt_url: str = setting(
        "",
        "MQTT broker to take sensor readings from: mqtt://user:password@host:1883 (mqtts:// for TLS). Empty: off.",
    )
    mqtt_topic: str = setting(
        "city/sensors/+/readings",
        "Topic filters to subscribe to, comma-separated; a message on city/sensors/{serial}/readings carries that "
        "sensor's readings (one JSON object or an array). Several serving processes: "
        "$share/smartcity/city/sensors/+/readings.",
    )
    mqtt_client_id: str = setting(
        "",
        "MQTT client id for the sensors' broker; set one to keep a persistent session. Empty: a random id.",
    )
    batch_size: int = setting(
        5000,
        "Readings written in one transaction at most by the sensing intake's writer.",
    )
    wifi_indoor_radius_m: float = setting(
        30.0,
        "Coverage radius in metres of a public Wi-Fi access point installed indoors (walls stop it: a floor of a "
        "building); used by the coverage map, the per-district shares and the gap finder.",
    )
    wifi_outdoor_radius_m: float = setting(
        100.0,
        "Coverage radius in metres of an access point installed outdoors (a street, a park, a bus stop); proposed "
        "new sites are outdoor ones.",
    )
    air_alert_window_s: int = setting(
        3600,
        "Air alerts: a district's PM2.5 level is the median of its sensors' readings of this many last seconds, "
        "so one noisy reading moves it little.",
    )
    air_alert_min_readings: int = setting(
        3,
        "Air alerts: the fewest readings in the window for a district to have a level at all (fewer: its alert "
        "state is kept as it was).",
    )
    air_alert_margin: float = setting(
        5.0,
        "Air alerts' hysteresis in µg/m³: a district enters an alert at 나쁨's threshold (PM2.5 36) and leaves it "
        "only below the threshold less this margin, so a level wavering around 36 alerts once.",
    )
    air_alerts_every_s: int = setting(
        120,
        "Seconds between two runs of the sensing.air_alerts job (district levels, alerts to subscribers).",
    )
    maintenance_every_s: int = setting(
        600,
        "Seconds between two runs of the sensing.maintenance job (silent sensors, impossible values, flatlines, "
        "spikes for the staff's maintenance page).",
    )
