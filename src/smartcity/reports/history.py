"""Importing another 311 system's history (CSV), all or nothing, with its original dates."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity
from smartcity.core.errors import InvalidInput, PermissionDenied
from smartcity.core.events import publish
from smartcity.core.geo import geo_index
from smartcity.core.i18n import localized
from smartcity.core.models import Department
from smartcity.core.params import iso_time
from smartcity.reports.common import (
    MAX_ADDRESS,
    MAX_DESCRIPTION,
    MAX_TITLE,
    MAX_UPDATE,
    STATUSES,
    _clean_text,
    profile_of,
)
from smartcity.reports.intake import may_import, placed_report
from smartcity.reports.models import Category, Report
from smartcity.reports.routing import route_for
from smartcity.reports.workflow import _set_status, _timeline

MAX_IMPORT_ROWS = 200_000  # one transaction; split a larger history into files


# Our fields a history file's columns can be mapped to (`smartcity reports import --map column=field,…`).
IMPORT_FIELDS = (
    "external_id",
    "category",
    "lat",
    "lon",
    "title",
    "description",
    "address",
    "status",
    "requested_at",
    "updated_at",
)


IMPORT_UPDATE_FIELDS = ("external_id", "at", "status", "text")


# Other systems' status words (Open311's, mySociety's, common CRM ones) in our workflow's.
IMPORT_STATUSES = {
    "new": "open",
    "submitted": "open",
    "reopen": "open",
    "for_triage": "open",
    "unconfirmed": "open",
    "investigating": "acknowledged",
    "confirmed": "acknowledged",
    "action_scheduled": "in_progress",
    "in progress": "in_progress",
    "resolved": "fixed",
    "completed": "fixed",
    "no_further_action": "closed",
    "cancelled": "closed",
    "not_councils_responsibility": "not_responsible",
    "internal_referral": "referred",
}


def parse_mapping(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """`column=field,column=field` → {column: field}; every field must be one of `allowed`."""
    mapping: dict[str, str] = {}
    for part in (p for p in text.split(",") if p.strip()):
        column, sep, name = part.partition("=")
        if not sep or not column.strip() or name.strip() not in allowed:
            raise InvalidInput(
                f"bad mapping {part.strip()!r}: use column=field with a field among {', '.join(allowed)}",
                code="invalid_mapping",
            )
        mapping[column.strip()] = name.strip()
    return mapping


def read_csv(text: str, mapping: dict[str, str], required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file under our field names (columns not mapped are left out; an unmapped column
    that is already one of our field names is taken as it is)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = reader.fieldnames or []
    names = {c: mapping.get(c, c) for c in columns}
    missing = [f for f in required if f not in names.values()]
    if missing:
        raise InvalidInput(
            f"the file has no column for {', '.join(missing)} (columns: {', '.join(columns)})", code="invalid_mapping"
        )
    return [{names[c]: (v or "").strip() for c, v in row.items() if c in names and c is not None} for row in reader]


@dataclass
class ImportedHistory:
    reports: int
    updates: int
    report_ids: list[int]


def _import_time(value: str, tz) -> datetime:
    """An ISO 8601 time of the city's old records (local time when it has no zone), or ValueError."""
    when = iso_time(value, tz)
    if when is None:
        raise ValueError(f"{value!r} is not a time")
    return when


def _import_status(value: str) -> str:
    word = value.strip().lower().replace("-", "_")
    if word in STATUSES:
        return word
    status = IMPORT_STATUSES.get(word) or IMPORT_STATUSES.get(word.replace("_", " "))
    if status is None:
        raise ValueError(f"unknown status {value!r}")
    return status


def import_history(
    session: Session,
    identity: Identity,
    rows: list[dict[str, str]],
    updates: list[dict[str, str]] = (),
    *,
    tz,
    language: str | None = None,
    source: str = "import",
) -> ImportedHistory:
    """Store another system's past requests with their own dates, statuses and updates, all or nothing:
    every row is checked first and any problem raises InvalidInput whose details name each row (1 is the
    first row after the header), the field and the problem; then everything is stored in the caller's
    transaction. Reporters and subscribers are not notified (it is history); each report is audited."""
    if not may_import(identity):
        raise PermissionDenied("importing history needs the reports.import permission", code="no_import")
    if not 0 < len(rows) <= MAX_IMPORT_ROWS:
        raise InvalidInput(f"a history file holds 1 to {MAX_IMPORT_ROWS:,} requests", code="invalid_import")
    problems: list[dict] = []
    profile = profile_of(session)
    language = language if language in profile.languages else profile.language
    index = geo_index(session.info["db"])
    categories = {c.code: c for c in session.scalars(select(Category))}
    seen: set[str] = set()
    known = set(
        session.scalars(select(Report.external_id).where(Report.source == "import", Report.external_id.is_not(None)))
    )
    planned = []
    for n, row in enumerate(rows, start=1):

        def problem(name: str, text: str, n=n) -> None:
            problems.append({"row": n, "field": name, "problem": text})

        ext = row.get("external_id", "")
        if not ext:
            problem("external_id", "is required")
        elif ext in seen:
            problem("external_id", f"{ext!r} appears twice in the file")
        elif ext in known:
            problem("external_id", f"{ext!r} was imported before")
        seen.add(ext)
        category = categories.get(row.get("category", ""))
        if category is None:
            problem("category", f"unknown category {row.get('category', '')!r}")
        try:
            where = index.locate(row.get("lat"), row.get("lon"))
        except InvalidInput as exc:
            problem("lat/lon", exc.message)
            where = None
        times = {}
        for name in ("requested_at", "updated_at"):
            if row.get(name):
                try:
                    times[name] = _import_time(row[name], tz)
                except ValueError:
                    problem(name, f"{row[name]!r} is not an ISO 8601 date and time")
        if "requested_at" not in times and not any(p["row"] == n and p["field"] == "requested_at" for p in problems):
            problem("requested_at", "is required")
        status = "open"
        if row.get("status"):
            try:
                status = _import_status(row["status"])
            except ValueError as exc:
                problem("status", str(exc))
        text_problems: list[dict] = []
        first_line = next((ln for ln in row.get("description", "").splitlines() if ln.strip()), "")
        title = _clean_text(
            row.get("title") or first_line or localized(category, "name", language) or "-",
            "title",
            MAX_TITLE,
            text_problems,
        )
        description = _clean_text(row.get("description", ""), "description", MAX_DESCRIPTION, text_problems)
        address = _clean_text(row.get("address", ""), "address", MAX_ADDRESS, text_problems) or None
        for p in text_problems:
            problem(p["field"], p["problem"])
        planned.append((ext, category, where, times, status, title, description, address))
    by_report: dict[str, list[tuple[datetime, str | None, str]]] = {}
    for n, u in enumerate(updates, start=1):
        ext = u.get("external_id", "")
        try:
            at = _import_time(u.get("at", ""), tz)
        except ValueError:
            problems.append({"row": n, "file": "updates", "field": "at", "problem": f"{u.get('at')!r} is not a date"})
            continue
        try:
            st = _import_status(u["status"]) if u.get("status") else None
        except ValueError as exc:
            problems.append({"row": n, "file": "updates", "field": "status", "problem": str(exc)})
            continue
        if ext not in seen:
            problems.append(
                {"row": n, "file": "updates", "field": "external_id", "problem": f"no request {ext!r} in the file"}
            )
            continue
        by_report.setdefault(ext, []).append((at, st, u.get("text", "")[:MAX_UPDATE]))
    if problems:
        raise InvalidInput(
            f"nothing was imported: {len(problems)} problem(s) in the file", code="invalid_import", details=problems
        )

    label = f"import:{identity.label}"
    routes: dict[tuple[str, str], Department] = {}
    ids, update_count = [], 0
    for ext, category, where, times, status, title, description, address in planned:
        requested = times["requested_at"]
        history = sorted(by_report.get(ext, []), key=lambda u: u[0])
        updated = max([times.get("updated_at", requested), requested] + [u[0] for u in history])
        key = (category.code, where.district.code)
        unit = routes.get(key) or routes.setdefault(key, route_for(session, category, where.district.code))
        report = placed_report(
            category,
            where,
            title=title,
            description=description,
            address_string=address,
            attributes={},
            unit_id=unit.id,
            language=language,
            source=source,
            external_id=ext[:100],
            created_at=requested,
            updated_at=updated,
            due_at=requested + timedelta(days=category.service_days),
            photo_count=0,
        )
        session.add(report)
        session.flush()
        _timeline(session, report, identity, "created", None, "open", "", public=True, actor_label=label, at=requested)
        for at, st, text in history:
            old = report.status
            if st and st != old:
                _set_status(report, st, at)
            _timeline(
                session,
                report,
                identity,
                "status" if st and st != old else "update",
                old,
                report.status,
                text,
                public=True,
                actor_label=label,
                at=at,
            )
            update_count += 1
        if report.status != status:  # the row's status is the request's state now
            _set_status(report, status, updated)
        report.updated_at = updated
        audit.record(session, identity, "import", "report", report.id, {"external_id": ext, "source": source})
        ids.append(report.id)
    publish(session, "report.imported", {"count": len(ids)})
    return ImportedHistory(len(ids), update_count, ids)
