"""Air quality for citizens: Korea's comprehensive air-quality bands for PM10 and PM2.5 (the one place they are
defined), each sensor's and district's latest level, and alerts to citizens subscribed to a district.

Bands (µg/m³, a value rounded to a whole number first, as the city publishes them):

    band        PM10       PM2.5
    좋음 good    0–30       0–15
    보통 moderate 31–80     16–35
    나쁨 bad     81–150     36–75
    매우나쁨 very bad 151+  76+

A sensor's or district's band is the worse of its PM10 and PM2.5 bands (the comprehensive index's rule).

Alerts (hysteresis): a district's level is the median of its sensors' PM2.5 readings of the last
`air_alert_window_s` seconds (at least `air_alert_min_readings` of them; SensingSettings), so one noisy reading
moves it little. A district enters an alert when its level reaches 나쁨 (36) and leaves it only when the level
falls below 36 − `air_alert_margin`: a level wavering around
the threshold alerts once. Subscribers hear once per entry, by web push on each browser they subscribed and by
email when their account has an address.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit, notify, push
from smartcity.core.context import context_of
from smartcity.core.errors import InvalidInput, NotFound
from smartcity.core.geo import geo_index
from smartcity.core.i18n import N_, translate
from smartcity.core.models import User
from smartcity.sensing.air_models import AirDistrictState, AirSubscription
from smartcity.sensing.models import Reading, Rollup
from smartcity.sensing.quantities import BY_NAME
from smartcity.sensing.rollup import HOUR
from smartcity.sensing.sensors import sensors
from smartcity.sensing.settings import SensingSettings

DEFAULTS = SensingSettings()

ALERT_KEY = "pm25"


@dataclass(frozen=True)
class Band:
    """A band: its key, names, the fill colour of its marks and the text colour that reads on it (WCAG AA)."""

    key: str
    rank: int
    ko: str
    en: str
    colour: str
    text: str

    def name(self, language: str) -> str:
        return self.ko if language == "ko" else self.en


BANDS: tuple[Band, ...] = (
    Band("good", 0, "좋음", "Good", "#1d4ed8", "#ffffff"),
    Band("moderate", 1, "보통", "Moderate", "#15803d", "#ffffff"),
    Band("bad", 2, "나쁨", "Bad", "#b45309", "#ffffff"),
    Band("very_bad", 3, "매우나쁨", "Very bad", "#b91c1c", "#ffffff"),
)
# The lowest whole value of each band after the first, per quantity.
THRESHOLDS: dict[str, tuple[int, int, int]] = {"pm10": (31, 81, 151), "pm25": (16, 36, 76)}
BAD = BANDS[2]
NO_DATA = Band("none", -1, "자료 없음", "No data", "#475569", "#ffffff")


def rounded(value: float) -> int:
    """Half up, as the published hourly values are (Python's round() would take 35.5 to 36 but 36.5 to 36)."""
    return math.floor(value + 0.5)


def band_of(quantity: str, value: float | None) -> Band:
    """The band of a PM10 or PM2.5 value in µg/m³ (NO_DATA for none)."""
    if value is None:
        return NO_DATA
    limits = THRESHOLDS[quantity]
    whole = rounded(value)
    return BANDS[sum(whole >= low for low in limits)]


def worst(*bands: Band) -> Band:
    return max(bands, key=lambda b: b.rank)


# --- levels: each sensor's latest hour, each district's mean ----------------------------------------------


def sensor_levels(session: Session, now: float | None = None) -> list[dict]:
    """Every sensor with its PM10 and PM2.5 means over its latest hour with readings in the last day (hourly
    roll-ups, so the level is as fresh as the roll-up job), and the band they make."""
    now = time.time() if now is None else now
    codes = {BY_NAME[q].code: q for q in THRESHOLDS}
    rows = session.execute(
        select(Rollup.sensor_id, Rollup.quantity, Rollup.start, Rollup.sum, Rollup.count)
        .where(
            Rollup.resolution == HOUR,
            Rollup.quantity.in_(codes),
            Rollup.start >= int(now) - 86400,
            Rollup.start <= int(now),
        )
        .order_by(Rollup.start)
    )
    latest: dict[tuple[int, str], tuple[int, float]] = {}
    for sensor_id, code, start, total, count in rows:
        if count:
            latest[(sensor_id, codes[code])] = (start, total / count)
    out = []
    for sensor in sensors(session):
        row = dict(sensor)
        bands = []
        hours = []
        for q in THRESHOLDS:
            hour, mean = latest.get((sensor["id"], q), (None, None))
            row[q] = None if mean is None else round(mean, 1)
            bands.append(band_of(q, mean))
            if hour is not None:
                hours.append(hour)
        row["band"] = worst(*bands)
        row["hour"] = max(hours) if hours else None
        out.append(row)
    return out


def district_levels(db, levels: list[dict], language: str) -> list[dict]:
    """Each district's mean of its sensors' levels (a district without sensors: no data), by name."""
    by_district: dict[str, list[dict]] = {}
    for row in levels:
        if row["district"]:
            by_district.setdefault(row["district"], []).append(row)
    out = []
    for area in geo_index(db).districts:
        rows = by_district.get(area.code, [])
        entry = {"code": area.code, "name": area.name(language), "sensors": len(rows)}
        bands = []
        for q in THRESHOLDS:
            values = [r[q] for r in rows if r[q] is not None]
            mean = sum(values) / len(values) if values else None
            entry[q] = None if mean is None else round(mean, 1)
            bands.append(band_of(q, mean))
        entry["band"] = worst(*bands)
        out.append(entry)
    out.sort(key=lambda e: e["name"])
    return out


def district_name(db, code: str, language: str) -> str:
    for area in geo_index(db).districts:
        if area.code == code:
            return area.name(language)
    return code


# --- alerts: subscriptions and the hysteresis -------------------------------------------------------------


def subscribe(session: Session, user_id: int, district: str) -> AirSubscription:
    """Subscribe a signed-in citizen to a district's PM2.5 alerts (again: the same subscription)."""
    if district not in {a.code for a in geo_index(session.info["db"]).districts}:
        raise InvalidInput(f"unknown district {district!r}", code="unknown_district")
    sub = session.scalar(
        select(AirSubscription).where(AirSubscription.user_id == user_id, AirSubscription.district_code == district)
    )
    if sub is not None:
        return sub
    sub = AirSubscription(user_id=user_id, district_code=district, token=secrets.token_urlsafe(32))
    session.add(sub)
    session.flush()
    audit.record(session, f"user:{user_id}", "subscribe", "sensing_air_subscription", sub.id, {"district": district})
    return sub


def subscriptions_of(session: Session, user_id: int) -> list[AirSubscription]:
    return list(
        session.scalars(
            select(AirSubscription).where(AirSubscription.user_id == user_id).order_by(AirSubscription.district_code)
        )
    )


def subscription_by_token(session: Session, token: str) -> AirSubscription:
    sub = session.scalar(select(AirSubscription).where(AirSubscription.token == str(token)))
    if sub is None:
        raise NotFound("no such subscription", code="unknown_subscription")
    return sub


def unsubscribe(session: Session, token: str) -> str:
    """End a subscription by its secret token (from a POST only: mail scanners follow links); its district."""
    sub = subscription_by_token(session, token)
    audit.record(
        session,
        f"user:{sub.user_id}",
        "unsubscribe",
        "sensing_air_subscription",
        sub.id,
        {"district": sub.district_code},
    )
    session.delete(sub)
    return sub.district_code


def reachable(session: Session, user_id: int) -> bool:
    """Whether an alert can reach the account: a browser subscribed to web push, or an email address."""
    user = session.get(User, user_id)
    return bool(user and user.email) or push.has_subscription(session, user_id)


def next_state(alerting: bool, level: float | None, margin: float = DEFAULTS.air_alert_margin) -> bool:
    """The hysteresis: in at 나쁨's threshold, out only below it less `margin`; no level keeps the state."""
    if level is None:
        return alerting
    enter = THRESHOLDS[ALERT_KEY][1]
    if alerting:
        return level >= enter - margin
    return band_of(ALERT_KEY, level).rank >= BAD.rank


def district_pm25(session: Session, now: float, settings: SensingSettings = DEFAULTS) -> dict[str, float]:
    """Each district's level: the median of its sensors' PM2.5 readings over the last `air_alert_window_s`
    seconds, when there are at least `air_alert_min_readings` of them."""
    district_of = {s["id"]: s["district"] for s in sensors(session) if s["district"]}
    rows = session.execute(
        # The sensors listed, so both stores seek each one's key rather than walk the time index (2.6 s → see
        # docs/sensing.md for 850 sensors on SQLite).
        select(Reading.sensor_id, Reading.value).where(
            Reading.sensor_id.in_(sorted(district_of)),
            Reading.quantity == BY_NAME[ALERT_KEY].code,
            Reading.observed_at > int(now) - settings.air_alert_window_s,
            Reading.observed_at <= int(now),
        )
    )
    values: dict[str, list[float]] = {}
    for sensor_id, value in rows:
        district = district_of.get(sensor_id)
        if district:
            values.setdefault(district, []).append(value)
    return {d: statistics.median(v) for d, v in values.items() if len(v) >= settings.air_alert_min_readings}


ALERT_SUBJECT = N_("Fine dust alert: {district}")
ALERT_BODY = N_(
    "Ultrafine dust (PM2.5) in {district} is now at the level “{band}” ({value} µg/m³). "
    "Limit time outdoors and consider a mask."
)
ALERT_STOP = N_("To stop these alerts: {url}")


def run_alerts(db, now: float | None = None, base_url: str = "") -> int:
    """Update every district's alert state from its level; alert the subscribers of districts that have just
    entered 나쁨 or worse. Returns how many messages were queued."""
    now = time.time() if now is None else now
    settings = context_of(db).settings_of(SensingSettings)
    queued = 0
    with db.session() as s:
        levels = district_pm25(s, now, settings)
        states = {st.district_code: st for st in s.scalars(select(AirDistrictState))}
        for district in set(levels) | set(states):
            level = levels.get(district)
            state = states.get(district)
            was = state.alerting if state else False
            now_alerting = next_state(was, level, settings.air_alert_margin)
            if state is None:
                state = AirDistrictState(district_code=district, alerting=False, since=int(now))
                s.add(state)
            state.level = level
            if now_alerting != was:
                state.alerting, state.since = now_alerting, int(now)
                if now_alerting:
                    queued += _alert(s, db, district, level or 0.0, base_url)
    return queued


def _alert(s: Session, db, district: str, level: float, base_url: str) -> int:
    subs = s.scalars(select(AirSubscription).where(AirSubscription.district_code == district)).all()
    queued = 0
    band = band_of(ALERT_KEY, level)
    for sub in subs:
        user = s.get(User, sub.user_id)
        if user is None or not user.active:
            continue
        lang = user.language or "ko"
        name = district_name(db, district, lang)
        subject = translate(lang, ALERT_SUBJECT, district=name)
        body = translate(lang, ALERT_BODY, district=name, band=band.name(lang), value=rounded(level))
        page = f"/air?district={district}"
        unsubscribe_url = f"{base_url}/air/unsubscribe/{sub.token}"
        ref = f"air:{district}"
        n = notify.queue_push(
            s, user.id, subject, body, url=page, topic="sensing.air_alert", ref=ref, replaces=f"air-{district}"
        )
        if user.email:
            notify.queue(
                s,
                "email",
                user.email,
                f"{body}\n\n{base_url}{page}\n\n{translate(lang, ALERT_STOP, url=unsubscribe_url)}",
                subject=subject,
                topic="sensing.air_alert",
                ref=ref,
                user_id=user.id,
                headers={"List-Unsubscribe": f"<{unsubscribe_url}>"},
                url=page,
            )
            n += 1
        queued += n
    if subs:
        audit.record(s, "job:sensing.air_alerts", "notify", "sensing_air_district", district, {"messages": queued})
    return queued


def job(db, settings) -> None:
    if due(db, "sensing.air_alerts", context_of(db).settings_of(SensingSettings).air_alerts_every_s):
        run_alerts(db, base_url=settings.site_url.rstrip("/"))


_RAN: dict[tuple[int, str], float] = {}


def due(db, name: str, every: float, now: float | None = None) -> bool:
    """Whether a job whose interval is a setting should run now: the scheduler's `Job.every` is fixed when the
    module is declared, before settings are read, so such jobs are declared with a short tick and gate here
    (per process, like the scheduler's own timing)."""
    now = time.monotonic() if now is None else now
    key = (id(db), name)
    if now - _RAN.get(key, -math.inf) < every:
        return False
    _RAN[key] = now
    return True


# --- the demo: one district's air turns bad -----------------------------------------------------------------

DEMO_EPISODE_S = 3 * 3600


def demo_episode(db, readings: list[dict], now: int, username: str = "citizen") -> str | None:
    """Raise the demo's dust in the first demo sensor's district over the last three hours (PM2.5 about 55,
    나쁨), so the map shows it and the alert job alerts; the demo citizen subscribes to that district."""
    with db.session() as s:
        district_of = {r["serial"]: r["district"] for r in sensors(s)}
    serials = sorted(r["sensor"] for r in readings if district_of.get(r["sensor"]))
    if not serials:
        return None
    district = district_of[serials[0]]
    for r in readings:
        if district_of.get(r["sensor"]) == district and r["time"] > now - DEMO_EPISODE_S:
            if r["quantity"] == "pm25":
                r["value"] = round(r["value"] + 37, 2)
            elif r["quantity"] == "pm10":
                r["value"] = round(r["value"] + 50, 2)
    with db.session() as s:
        user_id = s.scalar(select(User.id).where(User.username == username))
        if user_id is not None:
            subscribe(s, user_id, district)
    return district
