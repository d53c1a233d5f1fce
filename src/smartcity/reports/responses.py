"""Response templates: the canned texts staff answer with, by category and status."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import InvalidInput, NotFound, PermissionDenied
from smartcity.core.i18n import localized, translations
from smartcity.reports.common import MAX_UPDATE, STATUSES, _clean_text, _raise_problems
from smartcity.reports.models import ResponseTemplate
from smartcity.reports.routing import _unit
from smartcity.reports.taxonomy import _ensure_seeded, get_category
from smartcity.reports.views import _require_work, get_report

# The bundled templates' titles (taxonomy.DEFAULT_TEMPLATES) are msgids of this context.
TITLE_CONTEXT = "response template"


@dataclass
class TemplateIn:
    title: str
    text_ko: str
    text_en: str
    status: str | None = None
    department: str | None = None  # unit code; None: every unit
    category: str | None = None


def list_templates(
    session: Session, identity: Identity, *, report_id: int | None = None, status: str | None = None
) -> list[ResponseTemplate]:
    """Templates staff may use: city-wide ones and their unit's; for a report, those that suit its unit and
    category."""
    check(identity, "reports.work")
    _ensure_seeded(session)
    q = select(ResponseTemplate)
    unit_id, cat = identity.department_id, None
    if report_id is not None:
        report = get_report(session, report_id)
        _require_work(identity, report)
        unit_id, cat = report.unit_id, report.category_code
    if unit_id is not None or not identity.can("reports.manage"):
        q = q.where(or_(ResponseTemplate.department_id.is_(None), ResponseTemplate.department_id == unit_id))
    if cat:
        q = q.where(or_(ResponseTemplate.category_code.is_(None), ResponseTemplate.category_code == cat))
    if status:
        q = q.where(or_(ResponseTemplate.status.is_(None), ResponseTemplate.status == status))
    return list(session.scalars(q.order_by(ResponseTemplate.title, ResponseTemplate.id)))


def save_template(
    session: Session, identity: Identity, data: TemplateIn, template_id: int | None = None
) -> ResponseTemplate:
    """Create or change a template: administrators any; staff their own unit's."""
    check(identity, "reports.work")
    problems: list[dict] = []
    title = _clean_text(data.title, "title", 200, problems, required=True)
    text_ko = _clean_text(data.text_ko, "text_ko", MAX_UPDATE, problems, required=True)
    text_en = _clean_text(data.text_en, "text_en", MAX_UPDATE, problems, required=True)
    if data.status and data.status not in STATUSES:
        problems.append({"field": "status", "code": "invalid_status", "problem": "unknown status"})
    _raise_problems(problems, "the template is not valid")
    unit = None
    if data.department:
        unit = _unit(session, data.department)
        if unit is None:
            raise InvalidInput(f"unknown department {data.department!r}", code="unknown_department")
    if not identity.can("reports.manage") and (unit is None or unit.id != identity.department_id):
        raise PermissionDenied("staff may only keep templates of their own unit", code="other_unit")
    if data.category:
        get_category(session, data.category)
    tpl = session.get(ResponseTemplate, template_id) if template_id else ResponseTemplate()
    if tpl is None:
        raise NotFound("no such response template")
    if template_id and not identity.can("reports.manage") and tpl.department_id != identity.department_id:
        raise PermissionDenied("staff may only keep templates of their own unit", code="other_unit")
    tpl.title, tpl.text_ko, tpl.text_en, tpl.status = title, text_ko, text_en, data.status
    tpl.department_id, tpl.category_code = unit.id if unit else None, data.category
    session.add(tpl)
    session.flush()
    audit.record(session, identity, "update" if template_id else "create", "report_template", tpl.id)
    return tpl


def delete_template(session: Session, identity: Identity, template_id: int) -> None:
    check(identity, "reports.work")
    tpl = session.get(ResponseTemplate, template_id)
    if tpl is None:
        raise NotFound("no such response template")
    if not identity.can("reports.manage") and tpl.department_id != identity.department_id:
        raise PermissionDenied("staff may only keep templates of their own unit", code="other_unit")
    audit.record(session, identity, "delete", "report_template", tpl.id)
    session.delete(tpl)


def template_view(t: ResponseTemplate, language: str, *, reader: str | None = None) -> dict:
    """A template as staff pick it: its text in `language` (what is sent), a bundled title in the `reader`'s
    language (the one who picks it; default `language`)."""
    return {
        "id": t.id,
        "title": translations(reader or language).upgettext(TITLE_CONTEXT, t.title) if t.title else t.title,
        "text": localized(t, "text", language),
        "text_ko": t.text_ko,
        "text_en": t.text_en,
        "status": t.status,
        "department_id": t.department_id,
        "category": t.category_code,
    }
