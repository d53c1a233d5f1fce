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
    comment_reports_per_hour: int = setting(
        20, "Debate comments one person may report in an hour (a limit against flooding the moderators)."
    )
    max_images: int = setting(4, "Most pictures one proposal may carry.")
    max_image_bytes: int = setting(8 * 1024 * 1024, "Largest picture accepted for a proposal, in bytes.")
    reply_depth: int = setting(3, "How deep replies may nest in a debate (1: replies to top comments only).")
    vote_verifier: str = setting(
        "sms",
        "How a person is verified before a first vote: 'sms' (a one-time code to their phone), 'census' (the "
        "residents register loaded with `smartcity participation load-census`), or 'package.module:Class'.",
    )
    vote_min_count: int = setting(10, "Result cells (an answer in a district or an age band) below this are hidden.")
    vote_code_minutes: int = setting(5, "Minutes a one-time verification code stays valid.")
    vote_code_attempts: int = setting(5, "Wrong tries after which a one-time code is dead.")
    vote_sends_per_phone: int = setting(3, "One-time codes sent to one phone in an hour, at most.")
    vote_sends_per_account: int = setting(
        5, "Verification attempts (codes sent, register look-ups) per account an hour."
    )
    vote_batch: int = setting(
        32,
        "Ballots sealed into a vote's hash chain together, shuffled (so the chain's order is not the casting order).",
    )
    budget_min_count: int = setting(
        10, "A participatory budget's area with fewer ballots shows its winners but not its counts (pages, open data)."
    )
    hearing_document_max_bytes: int = setting(
        20_000_000, "Largest document (PDF or text) an official may attach to a public hearing, in bytes."
    )
