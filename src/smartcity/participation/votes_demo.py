"""The demo's votes (`smartcity demo`): an open vote for the demo district (the demo citizen is verified, so a
visitor signed in as them can vote at once: the demo has no SMS gateway to receive a code), and a closed
city-wide vote with published results. The closed vote's crowd is synthetic: ballots put straight into the
ballot box and chained, as the proposals' demo sets counters instead of making people."""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import select

from smartcity.core.auth import identity_of_user
from smartcity.core.city import CityProfile
from smartcity.core.db import utcnow
from smartcity.core.demo import demo_district
from smartcity.core.models import District, User
from smartcity.participation import votes_service as service
from smartcity.participation.verification import keyed
from smartcity.participation.voting_models import Ballot, Verification, Vote

OPEN_TITLE = "우리 동네 새 공원 이름 정하기"
OPEN_QUESTIONS = [
    {
        "text": "새 공원의 이름으로 가장 마음에 드는 것은?",
        "kind": "single",
        "options": ["햇살공원", "느티나무공원", "어울림공원"],
    },
    {
        "text": "공원에 꼭 있었으면 하는 시설의 순위를 매겨 주세요",
        "kind": "ranking",
        "options": ["어린이 놀이터", "반려견 놀이터", "야외 운동기구"],
        "max_choices": 3,
    },
]
CLOSED_TITLE = "서울시 심야 올빼미버스 노선 확대"
CLOSED_QUESTIONS = [
    {
        "text": "심야 올빼미버스 노선을 늘리는 데 찬성하십니까?",
        "kind": "single",
        "options": ["찬성", "반대", "잘 모르겠다"],
    },
    {
        "text": "늘린다면 어느 시간대가 가장 필요합니까? (2개까지)",
        "kind": "multiple",
        "options": ["밤 12시~2시", "새벽 2시~4시", "새벽 4시~첫차"],
        "max_choices": 2,
    },
]
CROWD = 640


def load(db, profile: CityProfile) -> Iterator[str]:
    """Idempotent: nothing is added when the demo's open vote is there."""
    with db.session() as s:
        if s.scalar(select(Vote.id).where(Vote.title == OPEN_TITLE).limit(1)) is not None:
            yield "demo votes: already there"
            return
        people = {u.username: u for u in s.scalars(select(User).where(User.username.in_(("citizen", "staff"))))}
        if len(people) < 2:
            yield "demo votes: skipped (no demo citizen and staff accounts)"
            return
        staff = identity_of_user(people["staff"], "demo")
        district = demo_district(profile)
        if district and s.scalar(select(District.id).where(District.code == district)) is None:
            district = None
        now = utcnow()
        open_vote = service.create(
            s,
            staff,
            service.NewVote(
                OPEN_TITLE,
                OPEN_QUESTIONS,
                now - timedelta(days=2),
                now + timedelta(days=12),
                description="구청이 조성하는 새 근린공원의 이름과 시설을 주민 투표로 정합니다.",
                target={"districts": [district] if district else []},
            ),
        )
        closed = service.create(
            s,
            staff,
            service.NewVote(
                CLOSED_TITLE,
                CLOSED_QUESTIONS,
                now - timedelta(days=21),
                now - timedelta(days=7),
                description="막차 이후 귀갓길을 위해 심야버스 노선을 늘릴지 시민께 묻습니다.",
            ),
        )
        if s.scalar(select(Verification.id).where(Verification.user_id == people["citizen"].id)) is None:
            s.add(
                Verification(
                    user_id=people["citizen"].id,
                    method="demo",
                    identity_hash=keyed(db, "demo", "citizen"),
                    district_code=district,
                    birth_year=now.year - 34,
                    verified_at=now,
                )
            )
        codes = list(s.scalars(select(District.code).order_by(District.code)))
        rng = random.Random(15)
        for _ in range(CROWD):
            first = rng.choices([0, 1, 2], weights=[58, 33, 9])[0]
            hours = sorted(rng.sample([0, 1, 2], rng.choice([1, 2])))
            s.add(
                Ballot(
                    id=secrets.token_hex(16),
                    vote_id=closed.id,
                    answers=f"[[{first}],[{','.join(map(str, hours))}]]",
                    district_code=rng.choice(codes) if codes else "",
                    age_band=rng.choices(range(8), weights=[3, 22, 20, 18, 16, 12, 7, 2])[0],
                    receipt_hash=hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
                )
            )
        closed.received = CROWD
        s.flush()
        service.close(s, closed)
    yield f"demo votes: one open for the demo district (vote {open_vote.id}), one closed with results ({CROWD} ballots)"
