"""Demo reports for `make demo`: a few hundred reports spread over every district (positions drawn inside
the stored district polygons), in every status, with timelines, and two mapping campaigns. Idempotent:
nothing is added once demo reports exist."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from shapely.geometry import Point, shape
from sqlalchemy import func, select

from smartcity.core.auth import ANONYMOUS, Identity
from smartcity.core.db import utcnow
from smartcity.core.demo import demo_district
from smartcity.core.models import District
from smartcity.reports import service as S
from smartcity.reports.models import Report, ReportUpdate

COUNT = 300
STATUS_MIX = [
    ("open", 30),
    ("acknowledged", 15),
    ("in_progress", 15),
    ("fixed", 20),
    ("closed", 10),
    ("duplicate", 4),
    ("not_responsible", 3),
    ("referred", 3),
]
PATHS = {
    "open": [],
    "acknowledged": ["acknowledged"],
    "in_progress": ["acknowledged", "in_progress"],
    "fixed": ["acknowledged", "in_progress", "fixed"],
    "closed": ["acknowledged", "fixed", "closed"],
    "not_responsible": ["not_responsible"],
    "referred": ["acknowledged", "referred"],
}
ANSWERS = {
    "acknowledged": "신고 내용을 확인했습니다. 현장을 점검하겠습니다.",
    "in_progress": "작업반이 배정되어 처리 중입니다.",
    "fixed": "처리를 완료했습니다. 확인 부탁드립니다.",
    "closed": "처리 결과가 확인되어 종결합니다.",
    "not_responsible": "사유지 관련 사항으로 관리 주체에 문의하시기 바랍니다.",
    "referred": "한국전력공사로 이관했습니다.",
}
DETAILS = [
    "며칠째 그대로입니다.",
    "밤에 특히 위험합니다.",
    "아이들이 자주 다니는 길입니다.",
    "빠른 조치 부탁드립니다.",
    "출퇴근 시간에 불편이 큽니다.",
    "사진 첨부합니다.",
    "지난주부터 계속되고 있습니다.",
]
CAMPAIGNS = [
    (
        "barrier-free",
        "무장애 길 찾기",
        "Barrier-free routes",
        "휠체어와 유모차가 다니기 어려운 곳을 함께 지도에 표시해 주세요.",
        "Map the places wheelchairs and prams cannot pass.",
        "accessible",
        [
            ("bf-steps", "계단·턱", "Steps or high kerb"),
            ("bf-narrow", "좁은 보도", "Narrow footway"),
            ("bf-no-ramp", "경사로 없음", "No ramp"),
        ],
    ),
    (
        "school-zones",
        "안전한 통학로",
        "Safe school routes",
        "어린이보호구역의 위험 요소를 알려 주세요.",
        "Tell us what makes school routes unsafe.",
        "school",
        [("sz-speeding", "과속 차량", "Speeding cars"), ("sz-no-crossing", "횡단보도 부족", "Missing crossing")],
    ),
]


# The share of reports placed in the demo district with a category of the demo staff account's unit kind,
# so that account's queue has work in it (the rest spread over every district).
HOME_SHARE = 0.15
HOME_KIND = "roads"
# The share of unresolved reports already past their service level: enough to show on the dashboard and
# in the queue's "overdue" filter, not so many that the service looks broken.
OVERDUE_SHARE = 0.2


def _points(db, rng: random.Random, district: str | None = None):
    """A generator of random points inside the stored districts (weighted equally), or inside one."""
    with db.session() as s:
        q = select(District).order_by(District.code)
        if district is not None:
            q = q.where(District.code == district)
        areas = [(d.code, shape(json.loads(d.geometry))) for d in s.scalars(q)]
    while True:
        code, geom = rng.choice(areas)
        west, south, east, north = geom.bounds
        for _ in range(200):
            lon, lat = rng.uniform(west, east), rng.uniform(south, north)
            if geom.contains(Point(lon, lat)):
                yield round(lat, 6), round(lon, 6)
                break


def _age(s, rid: int, days: float) -> None:
    """Move a report and its timeline back in time, keeping the order of its steps."""
    shift = timedelta(days=days)
    report = s.get(Report, rid)
    for name in ("created_at", "updated_at", "due_at", "acknowledged_at", "fixed_at", "closed_at"):
        value = getattr(report, name)
        if value is not None:
            setattr(report, name, value - shift)
    entries = list(s.scalars(select(ReportUpdate).where(ReportUpdate.report_id == rid).order_by(ReportUpdate.id)))
    step = shift / (len(entries) + 1) if len(entries) > 1 else timedelta(0)
    for i, u in enumerate(entries):
        u.at = u.at - shift + step * i
    if entries:
        report.updated_at = entries[-1].at
        if report.fixed_at:
            report.fixed_at = max(report.fixed_at, report.created_at + step * (len(entries) - 1))


def _age_days(report: Report, rng: random.Random) -> float:
    """How old a demo report is: a resolved one anything up to 45 days; an unresolved one mostly within its
    service level, and OVERDUE_SHARE of them past it (a realistic queue, not one where most is late)."""
    if report.status not in S.OPEN_STATUSES:
        return rng.uniform(0.2, 45)
    window = (report.due_at - report.created_at).total_seconds() / 86400 if report.due_at else 7.0
    if rng.random() < OVERDUE_SHARE:
        return rng.uniform(window + 0.5, window + 20)
    return rng.uniform(0.1, max(window * 0.9, 0.2))


def demo_reports(db, profile):
    rng = random.Random(20240501)
    admin = Identity(username="demo", role="admin", via="session")
    with db.session() as s:
        if s.scalar(select(func.count()).select_from(Report).where(Report.source == "demo")):
            yield "reports: demo reports already present"
            return
        S.seed(s, profile)
        cats = [c.code for c in S.list_categories(s)]
        with_attrs = {c.code: c.attributes for c in S.list_categories(s, everything=True)}
        now = utcnow()
        for slug, tko, ten, dko, den, theme, items in CAMPAIGNS:
            S.save_campaign(
                s,
                admin,
                S.CampaignIn(slug, tko, ten, now - timedelta(days=20), now + timedelta(days=40), dko, den, theme),
            )
            for code, nko, nen in items:
                S.save_category(
                    s, admin, S.CategoryIn(code, "other", nko, nen, unit_kind="roads", service_days=14, campaign=slug)
                )
    points = _points(db, rng)
    home = demo_district(profile)
    home_points = _points(db, rng, home) if home else None
    with db.session() as s:
        home_cats = [c.code for c in S.list_categories(s) if c.unit_kind == HOME_KIND] if home else []
    statuses = [st for st, w in STATUS_MIX for _ in range(w)]
    made: list[int] = []
    with db.session() as s:
        for i in range(COUNT):
            status = rng.choice(statuses)
            parent = None
            if status == "duplicate":
                open_ones = [r for r in made[-40:] if S.get_report(s, r).status in S.OPEN_STATUSES]
                parent = S.get_report(s, rng.choice(open_ones)) if open_ones else None
            if parent is not None:  # a second report of the same problem, a few metres away
                code, lat, lon = (
                    parent.category_code,
                    parent.lat + rng.uniform(-2e-4, 2e-4),
                    parent.lon + rng.uniform(-2e-4, 2e-4),
                )
            elif home_points is not None and home_cats and rng.random() < HOME_SHARE:
                code = rng.choice(home_cats)
                lat, lon = next(home_points)
            else:
                code = rng.choice(cats)
                lat, lon = next(points)
            cat = S.get_category(s, code)
            created = S.create_report(
                s,
                ANONYMOUS,
                S.NewReport(
                    category=code,
                    lat=lat,
                    lon=lon,
                    title=f"{cat.name_ko} 신고",
                    description=f"{cat.name_ko}: {rng.choice(DETAILS)}",
                    attributes=_attributes(with_attrs.get(code) or [], rng),
                    source="demo",
                    idempotency_key=f"demo-{i}",
                ),
            )
            rid = created.report.id
            if parent is not None:
                S.merge(s, admin, parent.id, [rid], text="같은 위치의 기존 신고와 함께 처리합니다.")
            else:
                for step in PATHS.get(status, []):
                    S.transition(s, admin, rid, step, text=ANSWERS.get(step, ""))
                if status == "closed":
                    s.get(Report, rid).rating = rng.randint(3, 5)
            if rng.random() < 0.3 and S.get_report(s, rid).status in S.OPEN_STATUSES:
                for n in range(rng.randint(1, 6)):
                    S.support(s, ANONYMOUS, rid, fingerprint=f"demo-{rid}-{n}")
            made.append(rid)
            s.flush()
            _age(s, rid, _age_days(s.get(Report, rid), rng))
        for slug, *_rest, items in CAMPAIGNS:
            for n in range(12):
                code = rng.choice(items)[0]
                lat, lon = next(points)
                S.create_report(
                    s,
                    ANONYMOUS,
                    S.NewReport(
                        category=code,
                        lat=lat,
                        lon=lon,
                        title=dict((c, nko) for c, nko, _ in items)[code],
                        description=rng.choice(DETAILS),
                        campaign=slug,
                        source="demo",
                        idempotency_key=f"demo-{slug}-{n}",
                    ),
                )
    yield f"reports: {COUNT} demo reports in every status and {len(CAMPAIGNS)} campaigns"


def _attributes(defs: list[dict], rng: random.Random) -> dict:
    out = {}
    for d in defs:
        if not d.get("required"):
            continue
        keys = [v["key"] for v in d.get("values", [])]
        out[d["code"]] = rng.choice(keys) if d["datatype"] == "singlevaluelist" else keys[:1]
    return out
