"""Air-quality pages, in Korean and English: the map of sensors coloured by band with district averages
(/air, its GeoJSON twin /air/sensors.geojson, refreshed by web/src/air.js every minute), a sensor's page
(/air/sensors/{serial}: last values, 24 hours and 30 days as plots and tables), district alerts for signed-in
citizens (/air/alerts, /air/unsubscribe/{token}), and the staff's maintenance page (/staff/sensing/maintenance).
Thin: the rules are in air.py and maintenance.py."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy import select

from smartcity.assets import service as assets
from smartcity.core.auth import CurrentIdentity, Identity, Require, verify_csrf
from smartcity.core.errors import InvalidInput, NotAuthenticated, NotFound
from smartcity.core.geo import geo_index
from smartcity.core.i18n import N_, translate
from smartcity.core.web import language_of, render
from smartcity.sensing import air, maintenance
from smartcity.sensing.air_plot import line_plot
from smartcity.sensing.intake import SENSORS
from smartcity.sensing.models import Reading
from smartcity.sensing.quantities import BY_CODE, QUANTITIES, quantity_named
from smartcity.sensing.rollup import DAY, HOUR, series

router = APIRouter(include_in_schema=False)
REFRESH_S = 60


def _bands(lang: str) -> list[dict]:
    return [{"key": b.key, "name": b.name(lang), "colour": b.colour, "text": b.text} for b in (*air.BANDS, air.NO_DATA)]


def _feature(row: dict, lang: str) -> dict:
    band = row["band"]
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        "properties": {
            "serial": row["serial"],
            "district": row["district"],
            "pm10": row["pm10"],
            "pm25": row["pm25"],
            "band": band.key,
            "band_name": band.name(lang),
            "colour": band.colour,
            "hour": row["hour"],
            "url": f"/air/sensors/{row['serial']}",
        },
    }


@router.get("/air/sensors.geojson")
def sensors_geojson(request: Request) -> JSONResponse:
    """Every sensor with its latest hour's PM10/PM2.5 and band; and each district's average band."""
    lang = language_of(request)
    db = request.app.state.db
    with db.session() as s:
        levels = air.sensor_levels(s)
    districts = air.district_levels(db, levels, lang)
    body = {
        "type": "FeatureCollection",
        "features": [_feature(r, lang) for r in levels if r["serial"]],
        "districts": [{**d, "band": d["band"].key, "colour": d["band"].colour} for d in districts],
    }
    return JSONResponse(body, media_type="application/geo+json", headers={"Cache-Control": "no-store"})


@router.get("/air", response_class=HTMLResponse)
def air_map(request: Request, district: str = ""):
    lang = language_of(request)
    db = request.app.state.db
    with db.session() as s:
        levels = air.sensor_levels(s)
    districts = air.district_levels(db, levels, lang)
    return render(
        request,
        "sensing/air_map.html",
        districts=districts,
        sensors=[r for r in levels if r["serial"]],
        district_names={d["code"]: d["name"] for d in districts},
        bands=_bands(lang),
        thresholds=air.THRESHOLDS,
        chosen=district,
        refresh_s=REFRESH_S,
    )


def _local(request: Request, epoch: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, request.app.state.profile.tz).strftime(fmt)


@router.get("/air/sensors/{serial}", response_class=HTMLResponse)
def sensor_page(request: Request, serial: str, quantity: str = "pm25"):
    lang = language_of(request)
    db = request.app.state.db
    tz = request.app.state.profile.tz
    q = quantity_named(quantity) or quantity_named("pm25")
    sensor_id = request.app.state.context.slot(SENSORS).ids_of([serial])[0]
    if sensor_id is None:
        raise NotFound(translate(lang, NO_SENSOR, serial=serial), code="unknown_sensor")
    now = int(time.time())
    with db.session() as s:
        sensor = _sensor(s, sensor_id)
        if sensor is None:
            raise NotFound(translate(lang, NO_SENSOR, serial=serial), code="unknown_sensor")
        latest = _latest(s, sensor_id)
        raw = series(s, sensor_id, q.code, 0, now - DAY, now + 1)
        hourly = series(s, sensor_id, q.code, HOUR, now - DAY, now + 1)
        daily = series(s, sensor_id, q.code, DAY, now - 30 * DAY, now + 1)
    day_points = [(p["time"], p["value"]) for p in raw] or [(p["time"], p["mean"]) for p in hourly]
    month_points = [(p["time"], p["mean"]) for p in daily if p["mean"] is not None]
    label = translate(lang, q.label)
    plots = {
        "day": line_plot(
            day_points,
            start=now - DAY,
            end=now,
            title=translate(lang, DAY_TITLE, quantity=label),
            description=translate(lang, DAY_DESC, count=len(day_points)),
            quantity=q.name,
            tz=tz,
        ),
        "month": line_plot(
            month_points,
            start=now - 30 * DAY,
            end=now,
            title=translate(lang, MONTH_TITLE, quantity=label),
            description=translate(lang, MONTH_DESC, count=len(month_points)),
            quantity=q.name,
            tz=tz,
            time_format="%m-%d",
        ),
    }
    last = []
    for code, (at, value) in sorted(latest.items()):
        quantity_ = BY_CODE[code]
        band = air.band_of(quantity_.name, value) if quantity_.name in air.THRESHOLDS else None
        last.append(
            {
                "name": quantity_.name,
                "label": translate(lang, quantity_.label),
                "value": value,
                "unit": quantity_.unit,
                "at": _local(request, at),
                "band": band,
            }
        )
    return render(
        request,
        "sensing/air_sensor.html",
        serial=serial,
        sensor=sensor,
        district=air.district_name(db, sensor.get("district") or "", lang) if sensor.get("district") else "",
        quantity=q,
        quantity_label=label,
        quantities=[(x.name, translate(lang, x.label)) for x in QUANTITIES],
        last=last,
        plots=plots,
        day_rows=[(_local(request, t), round(v, 1)) for t, v in day_points],
        month_rows=[(_local(request, t, "%Y-%m-%d"), round(v, 1)) for t, v in month_points],
        bands=_bands(lang),
    )


def _latest(session, sensor_id: int) -> dict[int, tuple[int, float]]:
    """Each quantity's last reading of the sensor. One seek per quantity down the key (sensor, quantity, time),
    newest first: a `GROUP BY` over the sensor's readings read its whole retention (~25 ms per quantity-year)."""
    found = {}
    for q in QUANTITIES:
        row = session.execute(
            select(Reading.observed_at, Reading.value)
            .where(Reading.sensor_id == sensor_id, Reading.quantity == q.code)
            .order_by(Reading.observed_at.desc())
            .limit(1)
        ).first()
        if row is not None:
            found[q.code] = (row[0], row[1])
    return found


def _sensor(session, sensor_id: int) -> dict | None:
    """The sensor's row by its asset id (a key lookup, not a listing of every sensor)."""
    try:
        asset = assets.get_asset(session, sensor_id)
    except NotFound:
        return None  # deleted since the serial registry was loaded
    return {
        "id": asset.id,
        "serial": asset.external_id,
        "name": asset.name,
        "lat": asset.lat,
        "lon": asset.lon,
        "district": asset.district_code,
    }


NO_SENSOR = N_("No sensor has the serial {serial}.")
DAY_TITLE = N_("{quantity}: last 24 hours")
DAY_DESC = N_("Line plot of {count} readings over the last 24 hours.")
MONTH_TITLE = N_("{quantity}: last 30 days")
MONTH_DESC = N_("Line plot of {count} daily means over the last 30 days.")
UNKNOWN_DISTRICT = N_("Choose a district from the list.")


# --- alerts -----------------------------------------------------------------------------------------------


def _alerts_page(request: Request, identity: Identity, status_code: int = 200, error: str = "", done: str = ""):
    lang = language_of(request)
    db = request.app.state.db
    with db.session() as s:
        subs = [
            {"district": sub.district_code, "name": air.district_name(db, sub.district_code, lang), "token": sub.token}
            for sub in air.subscriptions_of(s, identity.user_id)
        ]
        reachable = air.reachable(s, identity.user_id)
    districts = sorted(((a.code, a.name(lang)) for a in geo_index(db).districts), key=lambda d: d[1])
    return render(
        request,
        "sensing/air_alerts.html",
        status_code=status_code,
        subscriptions=subs,
        districts=districts,
        error=error,
        done=done,
        reachable=reachable,
    )


def _signed_in(identity: Identity) -> Identity:
    if identity.user_id is None:
        raise NotAuthenticated("sign in to subscribe to air-quality alerts")
    return identity


@router.get("/air/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, identity: CurrentIdentity):
    if identity.user_id is None:
        return RedirectResponse("/signin?next=/air/alerts", status_code=303)
    return _alerts_page(request, identity)


@router.post("/air/alerts", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
async def alerts_subscribe(request: Request, identity: CurrentIdentity):
    _signed_in(identity)
    form = await request.form()
    district = str(form.get("district", ""))
    try:
        with request.app.state.db.session() as s:
            air.subscribe(s, identity.user_id, district)
    except InvalidInput:
        message = translate(language_of(request), UNKNOWN_DISTRICT)
        return _alerts_page(request, identity, status_code=422, error=message)
    return _alerts_page(request, identity, done=district)


@router.get("/air/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_form(request: Request, token: str):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        sub = air.subscription_by_token(s, token)
        name = air.district_name(request.app.state.db, sub.district_code, lang)
    return render(request, "sensing/air_unsubscribe.html", token=token, district=name, done=False)


@router.post("/air/unsubscribe/{token}", response_class=HTMLResponse, dependencies=[Depends(verify_csrf)])
def unsubscribe(request: Request, token: str):
    lang = language_of(request)
    with request.app.state.db.session() as s:
        code = air.unsubscribe(s, token)
    name = air.district_name(request.app.state.db, code, lang)
    return render(request, "sensing/air_unsubscribe.html", token=token, district=name, done=True)


# --- maintenance ------------------------------------------------------------------------------------------


@router.get("/staff/sensing/maintenance", response_class=HTMLResponse)
def maintenance_page(request: Request, _staff: Identity = Depends(Require("sensing.maintain"))):
    with request.app.state.db.session() as s:
        found = maintenance.issues(s)
        ran = max((f["found_at"] for f in found), default=None)
    lang = language_of(request)
    for f in found:
        f["since_text"] = _local(request, f["since"])
        named = quantity_named(f["quantity"]) if f["quantity"] else None
        f["quantity_label"] = translate(lang, named.label) if named else ""
    return render(request, "sensing/maintenance.html", issues=found, ran=_local(request, ran), kinds=maintenance.KINDS)
