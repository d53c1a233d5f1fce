"""Participation's settings: SMARTCITY_PARTICIPATION_<FIELD>, one set per city (Democracy Seoul's since 2020
by default; 500 and 5,000 were its first thresholds)."""

from __future__ import annotations

from dataclasses import dataclass

from smartcity.settings import setting


@dataclass(frozen=True)
class ParticipationSettings:
    debate_likes: int = setting(100, "Likes that open a proposal's public debate.")
    answer_participants: int = setting(
        1000, "Debate participants after which the city owes the proposal an official answer."
    )
    window_days: int = setting(
        30, "Days a proposal has to reach each threshold (likes, then participants); after that it expires."
    )
    answer_days: int = setting(30, "Days the responsible department has to answer once an answer is due.")
    departments: str = setting(
        "transport=city-transport,safety=city-fire",
        "Which department answers a category's proposals (category=department code, comma-separated); "
        "other categories go to the city profile's fallback unit.",
    )
    proposals_per_day: int = setting(5, "Proposals one person may write in 24 hours (a limit against spam).")
    reply_depth: int = setting(3, "How deep replies may nest in a debate (1: replies to top comments only).")
