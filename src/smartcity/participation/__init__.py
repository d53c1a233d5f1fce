"""Citizen participation (issue 15), first slice: proposals the Democracy Seoul way — likes past a threshold
open a public debate, debate participants past a second one make an official answer due from the responsible
department; moderation hides with a reason, citizens report abuse.

Who may do what (declared below, checked by `core.auth` in service.py):
  - anyone reads the shown proposals;
  - participation.take_part   every signed-in person: propose, like, debate, follow, report abuse;
  - participation.answer      department staff: their department's queue, official answers, follow-ups;
  - participation.moderate    administrators: hide and show again, read abuse reports.

Thresholds and windows are settings (SMARTCITY_PARTICIPATION_*). See docs/participation.md.
"""

from __future__ import annotations

from smartcity.core.i18n import N_
from smartcity.core.jobs import Job
from smartcity.core.module import EVERY_ROLE, Module, NavLink
from smartcity.participation.settings import ParticipationSettings


def _expire(db, settings):
    """Close the proposals whose window ended short of their threshold."""
    from smartcity.participation import service

    return service.expire(db)


def _demo(db, profile):
    """Three Korean proposals, one in each phase: collecting likes, in debate, answered (participation/demo.py)."""
    from smartcity.participation.demo import load

    yield from load(db, profile)


module = Module(
    name="participation",
    audit="smartcity.participation.audit_words:WORDS",
    routers=("smartcity.participation.api:router", "smartcity.participation.pages:router"),
    permissions={
        "participation.take_part": (EVERY_ROLE,),
        "participation.answer": ("staff",),
        "participation.moderate": (),
    },
    nav=(
        NavLink(N_("Proposals"), "/participation/proposals"),
        NavLink(N_("Proposal queue"), "/participation/queue", "participation.answer"),
    ),
    jobs=(Job("participation.expire", 60, _expire),),
    demo=_demo,
    models="smartcity.participation.models",
    settings=ParticipationSettings,
)
