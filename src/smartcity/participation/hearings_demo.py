"""The demo's public hearings (`smartcity demo`): one whose live session is running now — questions upvoted,
one being answered, one answered — and an earlier one that ended with its minutes published. The crowd's
upvotes are counts, not people (the demo has a handful of accounts)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select, update

from smartcity.core.auth import identity_of_user
from smartcity.core.city import CityProfile
from smartcity.core.db import utcnow
from smartcity.core.models import User
from smartcity.participation import hearings
from smartcity.participation.hearings_models import Hearing, HearingQuestion

LIVE = (
    "한강공원 야간 조명 개선 계획 공청회",
    "Public hearing on the Han River parks' night lighting",
    "한강공원 산책로의 어두운 구간에 조명을 늘리는 계획을 설명하고 시민 의견을 듣습니다. 계획서를 읽고 "
    "질문을 남겨 주세요. 공청회 중에는 공감을 많이 받은 질문부터 답합니다.",
)
QUESTIONS = (
    ("citizen", "자전거 도로 쪽 조명은 눈부시지 않게 설치되나요?", 42),
    ("publisher", "조명이 늘면 철새 서식지에 영향은 없나요?", 27),
    ("citizen", "공사는 언제 시작해서 언제 끝나나요?", 15),
)
ANSWER = "내년 3월에 시작해 6월에 마칠 예정입니다. 공사 구간은 미리 안내하겠습니다."
PLAN = (
    "한강공원 야간 조명 개선 계획(요약)\n\n"
    "1. 대상: 산책로 중 조도 5럭스 미만 구간 12곳\n"
    "2. 방식: 아래 방향으로만 비추는 저눈부심 등기구\n"
    "3. 일정: 내년 3월 착공, 6월 완공\n"
)
DONE = (
    "마을버스 노선 개편안 공청회",
    "Public hearing on the village bus route changes",
    "마을버스 노선 개편안을 두고 열린 공청회입니다. 회의록을 확인해 주세요.",
)
MINUTES = (
    "## 회의 결과\n\n"
    "- 참석 시민 **64명**, 사전 의견 23건, 현장 질문 17건\n"
    "- 02번 노선은 지하철역까지 연장하기로 했습니다.\n"
    "- 05번 노선 폐지안은 의견을 반영해 **보류**합니다.\n"
)


def load(db, profile: CityProfile) -> Iterator[str]:
    """Idempotent: nothing is added when the demo's live hearing is there."""
    with db.session() as s:
        if s.scalar(select(Hearing.id).where(Hearing.topic_ko == LIVE[0]).limit(1)) is not None:
            yield "demo hearings: already there"
            return
        people = {
            u.username: u for u in s.scalars(select(User).where(User.username.in_(("citizen", "publisher", "staff"))))
        }
        if not {"citizen", "staff"} <= set(people):
            yield "demo hearings: skipped (no demo citizen and staff accounts)"
            return
        who = {name: identity_of_user(user, "demo") for name, user in people.items()}
        staff = who["staff"]
        now = utcnow()
        live = hearings.create(
            s,
            staff,
            hearings.NewHearing(
                LIVE[0],
                now - timedelta(days=7),
                now - timedelta(minutes=20),
                now + timedelta(hours=2),
                now + timedelta(days=7),
                LIVE[1],
                LIVE[2],
            ),
        )
        # Questions are asked in the session; they are put in as if asked before it began, when it was open too.
        asked = []
        for name, text, votes in QUESTIONS:
            if name in who:
                question = hearings.ask(s, who[name], live.id, text)
                asked.append(question.id)
                s.execute(update(HearingQuestion).where(HearingQuestion.id == question.id).values(votes=votes))
        hearings.add_document(s, staff, live.id, hearings.Upload("조명개선계획_요약.txt", PLAN.encode()))
        if len(asked) >= 3:
            hearings.answer(s, staff, live.id, asked[2], ANSWER)
            hearings.mark_answering(s, staff, live.id, asked[0])
        done = hearings.create(
            s,
            staff,
            hearings.NewHearing(
                DONE[0],
                now - timedelta(days=40),
                now - timedelta(days=30),
                now - timedelta(days=30, hours=-2),
                now - timedelta(days=20),
                DONE[1],
                DONE[2],
            ),
        )
        hearings.publish_minutes(s, staff, done.id, MINUTES)
    yield "demo hearings: one in its live session, one with its minutes"
