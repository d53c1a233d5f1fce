"""Campaigns: a time-boxed collection of categories with its own page and map."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core import audit
from smartcity.core.auth import Identity, check
from smartcity.core.errors import NotFound
from smartcity.core.i18n import N_
from smartcity.reports.common import MAX_DESCRIPTION, _clean_text, _loc, _now, _raise_problems
from smartcity.reports.models import Campaign


@dataclass
class CampaignIn:
    slug: str
    title_ko: str
    title_en: str
    starts_at: datetime
    ends_at: datetime
    description_ko: str = ""
    description_en: str = ""
    theme: str = ""
    district: str | None = None


def get_campaign(session: Session, slug: str) -> Campaign:
    camp = session.scalar(select(Campaign).where(Campaign.slug == str(slug)))
    if camp is None:
        raise NotFound(N_("no campaign {slug!r}"), params={"slug": slug})
    return camp


def list_campaigns(session: Session, *, running_at: datetime | None = None) -> list[Campaign]:
    """Campaigns, newest first; only those running at a time if given."""
    q = select(Campaign).order_by(Campaign.starts_at.desc(), Campaign.id.desc())
    if running_at is not None:
        q = q.where(Campaign.starts_at <= running_at, Campaign.ends_at >= running_at)
    return list(session.scalars(q))


def save_campaign(session: Session, identity: Identity, data: CampaignIn) -> Campaign:
    """Create or update a campaign by slug (reports.manage)."""
    check(identity, "reports.manage")
    problems: list[dict] = []
    if not re.fullmatch(r"[a-z0-9][a-z0-9\-]{1,79}", data.slug or ""):
        problems.append({"field": "slug", "code": "invalid", "problem": "lower-case letters, digits and -"})
    title_ko = _clean_text(data.title_ko, "title_ko", 200, problems, required=True)
    title_en = _clean_text(data.title_en, "title_en", 200, problems, required=True)
    desc_ko = _clean_text(data.description_ko, "description_ko", MAX_DESCRIPTION, problems)
    desc_en = _clean_text(data.description_en, "description_en", MAX_DESCRIPTION, problems)
    if not (
        isinstance(data.starts_at, datetime)
        and isinstance(data.ends_at, datetime)
        and data.starts_at.tzinfo
        and data.ends_at.tzinfo
        and data.starts_at < data.ends_at
    ):
        problems.append(
            {"field": "ends_at", "code": "invalid_period", "problem": "must be after starts_at (with zones)"}
        )
    _raise_problems(problems, "the campaign is not valid")
    camp = session.scalar(select(Campaign).where(Campaign.slug == data.slug))
    created = camp is None
    if created:
        camp = Campaign(slug=data.slug)
        session.add(camp)
    camp.title_ko, camp.title_en, camp.description_ko, camp.description_en = title_ko, title_en, desc_ko, desc_en
    camp.theme, camp.starts_at, camp.ends_at, camp.district_code = (
        data.theme[:50],
        data.starts_at,
        data.ends_at,
        data.district,
    )
    session.flush()
    audit.record(session, identity, "create" if created else "update", "report_campaign", camp.slug)
    return camp


def campaign_view(c: Campaign, language: str) -> dict:
    now = _now()
    return {
        "slug": c.slug,
        "title": _loc(c, "title", language),
        "description": _loc(c, "description", language),
        "title_ko": c.title_ko,
        "title_en": c.title_en,
        "theme": c.theme,
        "district": c.district_code,
        "starts_at": c.starts_at.isoformat(),
        "ends_at": c.ends_at.isoformat(),
        "running": c.starts_at <= now <= c.ends_at,
    }
