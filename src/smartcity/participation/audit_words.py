"""How the audit page tells the participation module's entries (core.audit.AuditWords, Module.audit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartcity.core.audit import AuditWords
from smartcity.core.i18n import N_, gettext
from smartcity.participation.budgets import PHASE_NAMES
from smartcity.participation.service import ANSWERS, CATEGORIES, STATUSES


def _named(*tables: Mapping[str, str]):
    def describe(language: str, value: Any) -> str | None:
        for table in tables:
            if value in table:
                return gettext(language, table[value])
        return None

    return describe


WORDS = AuditWords(
    subjects={
        "participation.budget": N_("participatory budget"),
        "participation.budget_project": N_("budget project"),
        "participation.proposal": N_("proposal"),
        "participation.comment": N_("debate comment"),
        "participation.hearing": N_("public hearing"),
        "participation.vote": N_("vote"),
        "participation.verification": N_("resident verification"),
    },
    actions={
        "move_phase": N_("{actor} moved {subject} to another phase"),
        "review_project": N_("{actor} reviewed {subject}"),
        "cast_budget_ballot": N_("{actor} voted in {subject}"),
        "refuse_budget_ballot": N_("{actor} was refused a ballot in {subject}"),
        "advance": N_("{actor} moved {subject} to its next step"),
        "answer": N_("{actor} answered {subject}"),
        "follow_up": N_("{actor} added a follow-up to {subject}"),
        "report_abuse": N_("{actor} reported {subject} as abusive"),
        "expire": N_("{actor} closed {subject} as expired"),
        "hide": N_("{actor} hid {subject}"),
        "unhide": N_("{actor} showed {subject} again"),
        "follow": N_("{actor} followed {subject}"),
        "unfollow": N_("{actor} stopped following {subject}"),
        "end_session": N_("{actor} ended the live session of {subject}"),
        "add_document": N_("{actor} added a document to {subject}"),
        "answering": N_("{actor} marked the question being answered in {subject}"),
        "publish_minutes": N_("{actor} published the minutes of {subject}"),
        "edit": N_("{actor} edited {subject}"),
        "refuse": N_("{actor} was refused a new proposal"),
        "add_images": N_("{actor} added pictures to {subject}"),
        "cast": N_("{actor} voted in {subject}"),
        "cast_refused": N_("{actor} was refused a ballot in {subject}"),
        "close": N_("{actor} closed {subject} and counted its ballots"),
        "send_code": N_("{actor} was sent a verification code"),
        "verify": N_("{actor} verified being a resident"),
        "verify_refused": N_("{actor} was refused verification as a resident"),
        "load_census": N_("{actor} loaded the residents register"),
    },
    actors={
        "participation": N_("the participation service"),
        "job:participation.expire": N_("the proposal expiry job"),
        "job:participation.budgets": N_("the budget phase job"),
        "job:participation.votes": N_("the vote closing job"),
    },
    keys={
        "to": N_("next step"),
        "proposal": N_("proposal"),
        "question": N_("question"),
        "file": N_("file"),
        "sms": N_("text messages"),
    },
    values={
        "participation.proposal:to": _named(STATUSES),
        "participation.budget:to": _named(PHASE_NAMES),
        "participation.proposal:status": _named(ANSWERS, STATUSES),
        "participation.proposal:category": _named(CATEGORIES),
    },
)
