"""Citizen participation (issue 15), first slice: proposals the Democracy Seoul way — likes past a threshold
open a public debate, debate participants past a second one make an official answer due from the responsible
department; moderation hides with a reason, citizens report abuse.

Who may do what (declared below, checked by `core.auth` in service.py):
  - anyone reads the shown proposals;
  - participation.take_part   every signed-in person: propose, like, debate, follow, report abuse;
  - participation.answer      department staff: their department's queue, official answers, follow-ups;
  - participation.moderate    administrators: hide and show again, read abuse reports.
  - participation.run_votes   staff: set up votes (mVoting; votes_service.py, verification.py).

Thresholds and windows are settings (SMARTCITY_PARTICIPATION_*). See docs/participation.md.
"""

from __future__ import annotations

from smartcity.core.i18n import N_
from smartcity.core.jobs import Job
from smartcity.core.module import EVERY_ROLE, Module, NavLink
from smartcity.participation.open_data import DATASETS
from smartcity.participation.settings import ParticipationSettings


def _expire(db, settings):
    """Close the proposals whose window ended short of their threshold."""
    from smartcity.participation import service

    return service.expire(db)


def _budgets_due(db, settings):
    """Move the participatory budgets whose next phase's start has come."""
    from smartcity.participation import budgets

    return budgets.advance_due(db)


def _hearings_live(db, settings):
    """Tell the followers of hearings whose live session has begun."""
    from smartcity.participation import hearings

    return hearings.announce_live(db)


def _votes_close(db, settings):
    """Seal and tally the votes whose closing time has come."""
    from smartcity.participation import votes_service

    return votes_service.close_due(db)


def _setup(app, context):
    """The bare route a city-wide vote's casts take, put first (votes_api.on_install)."""
    from smartcity.participation import votes_api

    votes_api.on_install(app)


def _demo(db, profile):
    """Three Korean proposals, one in each phase: collecting likes, in debate, answered (participation/demo.py)."""
    from smartcity.participation.demo import load

    yield from load(db, profile)
    from smartcity.participation.budgets_demo import load as load_budget

    yield from load_budget(db, profile)
    from smartcity.participation.hearings_demo import load as load_hearing

    yield from load_hearing(db, profile)
    from smartcity.participation.votes_demo import load as load_votes

    yield from load_votes(db, profile)


module = Module(
    name="participation",
    audit="smartcity.participation.audit_words:WORDS",
    routers=(
        "smartcity.participation.api:router",
        "smartcity.participation.pages:router",
        "smartcity.participation.debates_api:router",
        "smartcity.participation.debates_pages:router",
        "smartcity.participation.budgets_api:router",
        "smartcity.participation.budgets_pages:router",
        "smartcity.participation.hearings_api:router",
        "smartcity.participation.hearings_pages:router",
        "smartcity.participation.votes_api:router",
        "smartcity.participation.votes_pages:router",
    ),
    permissions={
        "participation.take_part": (EVERY_ROLE,),
        "participation.answer": ("staff",),
        "participation.moderate": (),
        "participation.budgets": ("staff",),
        "participation.hearings": ("staff",),
        "participation.run_votes": ("staff",),
    },
    nav=(
        NavLink(N_("Proposals"), "/participation/proposals"),
        NavLink(N_("Proposal queue"), "/participation/queue", "participation.answer"),
        NavLink(N_("Proposal moderation"), "/participation/moderation", "participation.moderate"),
        NavLink(N_("Participatory budgets"), "/participation/budgets"),
        NavLink(N_("Public hearings"), "/participation/hearings"),
        NavLink(N_("Votes"), "/participation/votes"),
    ),
    jobs=(
        Job("participation.expire", 60, _expire),
        Job("participation.budgets", 60, _budgets_due),
        Job("participation.hearings", 30, _hearings_live),
        Job("participation.votes", 60, _votes_close),
    ),
    demo=_demo,
    setup=_setup,
    cli="smartcity.participation.votes_cli:commands",
    models="smartcity.participation.models",
    settings=ParticipationSettings,
    datasets=DATASETS,
)
