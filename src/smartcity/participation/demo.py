"""The demo's participation story (`smartcity demo`): three Korean proposals in the demo district, one in each
phase a visitor should see — collecting likes, in public debate (in the demo staff's queue), and answered with
a follow-up. The crowd's likes and participants are counts, not people: the demo has a handful of accounts,
and the counters are what the pages and thresholds read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select, update

from smartcity.core.auth import identity_of_user
from smartcity.core.city import CityProfile
from smartcity.core.db import utcnow
from smartcity.core.demo import demo_district
from smartcity.core.models import District, User
from smartcity.participation import service
from smartcity.participation.models import ANSWER_DUE, DEBATE, Proposal

COLLECTING = (
    "한강공원에 다회용기 대여소를 만들어 주세요",
    "주말마다 한강공원 쓰레기통이 배달 음식 용기로 넘칩니다. 공원 입구마다 다회용기 대여·반납함을 두면 "
    "일회용품 쓰레기를 크게 줄일 수 있습니다.",
    "environment",
)
DEBATING = (
    "마을버스 막차를 자정까지 늘려 주세요",
    "지하철 막차에서 내려도 마을버스가 이미 끊겨 언덕길을 30분 넘게 걸어 올라가야 합니다. 평일만이라도 "
    "마을버스 막차를 자정까지 늘려 주시기를 제안합니다.",
    "transport",
)
ANSWERED = (
    "초등학교 앞 깨진 보도블록을 바꿔 주세요",
    "통학로 보도블록이 곳곳에 깨지고 들떠서 아이들이 자주 걸려 넘어집니다. 비가 오면 물웅덩이도 생깁니다. "
    "새 학기 전에 보도를 정비해 주세요.",
    "safety",
)
DEBATE_SAYS = (
    ("citizen", "저도 매일 밤 언덕길을 걸어서 올라갑니다. 막차 연장이 꼭 필요합니다."),
    ("publisher", "금요일과 토요일만이라도 먼저 늘려 보면 좋겠습니다."),
)
ANSWER = (
    "accepted",
    "현장을 확인했습니다. 다음 달 보도 정비 공사에 이 통학로를 포함해 깨진 보도블록 120m 구간을 모두 교체하겠습니다.",
)
REPLY = ("citizen", "좋은 생각입니다. 금요일과 토요일부터 시범 운행하자는 의견을 제안에 덧붙이겠습니다.")
FOLLOW_UP = "보도블록 교체 공사를 마쳤습니다. 공사 일정은 학교를 통해 학부모님께 미리 알렸습니다."


def load(db, profile: CityProfile) -> Iterator[str]:
    """Idempotent: nothing is added when the demo's first proposal is there."""
    with db.session() as s:
        if s.scalar(select(Proposal.id).where(Proposal.title == COLLECTING[0]).limit(1)) is not None:
            yield "demo proposals: already there"
            return
        people = {u.username: u for u in s.scalars(select(User).where(User.username.in_(("citizen", "staff"))))}
        if len(people) < 2:
            yield "demo proposals: skipped (no demo citizen and staff accounts)"
            return
        citizen = identity_of_user(people["citizen"], "demo")
        staff = identity_of_user(people["staff"], "demo")
        district = demo_district(profile)
        if district and s.scalar(select(District.id).where(District.code == district)) is None:
            district = None
        rules = service.settings_of(db)
        now = utcnow()
        made = []
        for title, body, category in (COLLECTING, DEBATING, ANSWERED):
            made.append(service.create(s, citizen, service.NewProposal(title, body, category, district)).id)
        collecting, debating, answered = made
        # The phases reached as if a crowd had liked and spoken: the thresholds of this city's settings.
        rows = update(Proposal)
        s.execute(
            rows.where(Proposal.id == collecting).values(
                likes=max(1, rules.debate_likes * 37 // 100), created_at=now - timedelta(days=4)
            )
        )
        debate_at = now - timedelta(days=6)
        s.execute(
            rows.where(Proposal.id == debating).values(
                status=DEBATE,
                likes=rules.debate_likes + 24,
                participants=max(0, rules.answer_participants * 21 // 100),
                created_at=now - timedelta(days=19),
                debate_at=debate_at,
                closes_at=debate_at + timedelta(days=rules.window_days),
                department_code=staff.department_code,
            )
        )
        s.execute(
            rows.where(Proposal.id == answered).values(
                status=ANSWER_DUE,
                likes=rules.debate_likes + 311,
                participants=rules.answer_participants + 87,
                created_at=now - timedelta(days=58),
                debate_at=now - timedelta(days=41),
                answer_due_at=now + timedelta(days=rules.answer_days - 9),
                department_code=staff.department_code,
            )
        )
        s.flush()
        service.answer(s, staff, answered, *ANSWER)
        service.follow_up(s, staff, answered, FOLLOW_UP)
        speakers = {
            u.username: identity_of_user(u, "demo")
            for u in s.scalars(select(User).where(User.username.in_([who for who, _ in DEBATE_SAYS])))
        }
    said = {who: service.comment(db, speakers[who], debating, text) for who, text in DEBATE_SAYS if who in speakers}
    # A thread a visitor can read: the proposer answers the second speaker, who agrees with the first.
    if "publisher" in said:
        who, text = REPLY
        service.comment(db, speakers[who], debating, text, parent_id=said["publisher"])
        if "citizen" in said:
            service.vote_comment(db, speakers["publisher"], said["citizen"], 1)
    yield "demo proposals: one collecting likes, one in public debate, one answered"
