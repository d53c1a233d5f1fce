"""Helpers the Community Mapping tests share: places in Seoul, photos, reports filed through the service."""

from __future__ import annotations

import io
import math

from PIL import Image
from sqlalchemy import func, select

from smartcity.core.auth import ANONYMOUS, identity_of_user
from smartcity.core.geo import EARTH_RADIUS_M
from smartcity.core.models import User
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportContact, ReportPhoto, ReportUpdate
from tests.conftest import PASSWORD

CITY_HALL = (37.5665, 126.9780)  # Jung-gu (11020)
GANGNAM = (37.49596, 127.05850)  # inside Gangnam-gu (11230)


def who(db, username: str):
    """The session identity of a user made by the test."""
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        return identity_of_user(user, "session")


def jpeg(width=64, height=48, exif: bool = False) -> bytes:
    """A JPEG photo; with `exif`, one that says which camera took it and where (what must be stripped)."""
    img = Image.new("RGB", (width, height), (200, 30, 30))
    buf = io.BytesIO()
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "SecretCam Inc."  # Make
        ex[0x0110] = "Model X"  # Model
        gps = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 40.0)}
        ex[0x8825] = gps
        img.save(buf, "JPEG", exif=ex.tobytes())
    else:
        img.save(buf, "JPEG")
    return buf.getvalue()


def new(category="roads-pothole", where=CITY_HALL, **kw) -> S.NewReport:
    kw.setdefault("title", "A deep pothole")
    kw.setdefault("attributes", {"size": "large"} if category == "roads-pothole" else {})
    return S.NewReport(category=category, lat=where[0], lon=where[1], **kw)


def file_report(db, identity=ANONYMOUS, **kw) -> int:
    with db.session() as s:
        return S.create_report(s, identity, new(**kw)).report.id


def counts(db) -> dict:
    """How many reports, contacts, photos and updates are stored (to show nothing was half-stored)."""
    with db.session() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Report, ReportContact, ReportPhoto, ReportUpdate)
        }


def destination(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point `metres` away from (lat, lon) along `bearing` on the sphere of core.geo's metric."""
    d, p1, l1 = metres / EARTH_RADIUS_M, math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), math.degrees(l2)


def sign_in(page, url: str, username: str) -> None:
    """Sign in through the real form (a browser test's page) and wait for the signed-in header."""
    page.goto(url + "/signin?lang=en")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(".who")
