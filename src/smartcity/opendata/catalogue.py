"""The catalogue: organisations, datasets, tags and resources as read models and their changes."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from smartcity.core.models import Department
from smartcity.opendata.models import Organisation

SLUG = re.compile(r"[^a-z0-9_-]+")


def slug(text: str) -> str:
    """A CKAN name from `text`: lower-case ASCII letters, digits, '-' and '_'."""
    return SLUG.sub("-", text.lower()).strip("-")[:100]


def new_uid() -> str:
    return str(uuid.uuid4())


def seed_organisations(session: Session) -> int:
    """An organisation for every department of the city that has none yet (idempotent); how many were added."""
    have = set(session.scalars(select(Organisation.department_code)))
    added = 0
    for dept in session.scalars(select(Department).where(Department.kind == "department").order_by(Department.code)):
        if dept.code in have:
            continue
        session.add(
            Organisation(
                uid=new_uid(),
                name=slug(dept.code),
                title_ko=dept.name_ko,
                title_en=dept.name_en,
                description_ko="",
                description_en="",
                department_code=dept.code,
            )
        )
        added += 1
    session.flush()
    return added
