"""JSON API of votes and verification (/api/participation/votes…, /api/participation/verification…) for the
mobile app, in the platform's error shape. Thin: rules, permissions and audit are in votes_service.py and
verification.py."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from smartcity.core.accounts import key_digest
from smartcity.core.auth import CurrentIdentity, Identity, current_identity, key_from_headers
from smartcity.participation import verification, votes_casting, votes_chain
from smartcity.participation import votes_service as service
from smartcity.participation.voting_models import Vote

router = APIRouter(prefix="/api/participation", tags=["participation"])

Short = Annotated[str, Field(max_length=service.OPTION_MAX)]


def _db(request: Request):
    return request.app.state.db


class QuestionModel(BaseModel):
    text: Annotated[str, Field(max_length=300)]
    kind: Literal["single", "multiple", "ranking"] = "single"
    options: Annotated[list[Short], Field(max_length=service.MAX_OPTIONS)]
    max_choices: Annotated[int | None, Field(ge=1, le=service.MAX_OPTIONS)] = None


class PointModel(BaseModel):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    radius_m: Annotated[float, Field(ge=50, le=100_000)]


class TargetModel(BaseModel):
    districts: Annotated[list[Annotated[str, Field(max_length=20)]], Field(max_length=100)] = []
    neighbourhoods: Annotated[list[Annotated[str, Field(max_length=20)]], Field(max_length=1000)] = []
    age_bands: Annotated[list[Annotated[int, Field(ge=0, le=7)]], Field(max_length=8)] = []
    point: PointModel | None = None


class VoteBody(BaseModel):
    title: Annotated[str, Field(max_length=service.TITLE_MAX)]
    description: Annotated[str, Field(max_length=service.TEXT_MAX)] = ""
    questions: Annotated[list[QuestionModel], Field(max_length=service.MAX_QUESTIONS)]
    opens_at: datetime
    closes_at: datetime
    target: TargetModel = TargetModel()
    results_hidden: bool = True
    min_count: Annotated[int | None, Field(ge=1, le=10_000)] = None

    def new(self) -> service.NewVote:
        data = self.model_dump()
        data["target"] = self.target.model_dump()
        return service.NewVote(**data)


class VoteView(BaseModel):
    id: int
    title: str
    description: str
    questions: list[QuestionModel]
    target: TargetModel
    opens_at: datetime
    closes_at: datetime
    status: Literal["upcoming", "open", "closed"]
    results_hidden: bool
    ballots: int
    verified: bool
    eligible: bool
    refusal: str | None = Field(None, description="why the caller may not vote: a code, e.g. outside_district")
    voted: bool


class VoteList(BaseModel):
    votes: list[VoteView]


def vote_view(session, vote: Vote, identity: Identity) -> VoteView:
    person = verification.verified(session, identity.user_id)
    why = service.ineligible(vote, person)
    return VoteView(
        id=vote.id,
        title=vote.title,
        description=vote.description,
        questions=vote.questions,
        target=vote.target,
        opens_at=vote.opens_at,
        closes_at=vote.closes_at,
        status=service.status_of(vote),
        results_hidden=vote.results_hidden,
        ballots=vote.received,
        verified=person is not None,
        eligible=why is None,
        refusal=why,
        voted=service.has_voted(session, vote.id, identity.user_id),
    )


@router.get("/votes", response_model=VoteList)
def list_votes(
    request: Request,
    identity: CurrentIdentity,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> VoteList:
    """Votes, the latest to close first, each with whether the caller may vote and has voted."""
    with _db(request).session() as s:
        return VoteList(votes=[vote_view(s, v, identity) for v in service.listing(s, limit, offset)])


@router.post("/votes", status_code=201, response_model=VoteView)
def create_vote(request: Request, body: VoteBody, identity: CurrentIdentity) -> VoteView:
    """Staff: set up a vote — questions (single, multiple with max_choices, ranking of max_choices options),
    opening and closing times, a target (districts, neighbourhoods, age bands 0–7, a point and distance)."""
    with _db(request).session() as s:
        return vote_view(s, service.create(s, identity, body.new()), identity)


@router.put("/votes/{vote_id}", response_model=VoteView)
def edit_vote(request: Request, vote_id: int, body: VoteBody, identity: CurrentIdentity) -> VoteView:
    """Staff: change a vote before it opens."""
    with _db(request).session() as s:
        return vote_view(s, service.edit(s, identity, vote_id, body.new()), identity)


@router.get("/votes/{vote_id}", response_model=VoteView)
def show_vote(request: Request, vote_id: int, identity: CurrentIdentity) -> VoteView:
    with _db(request).session() as s:
        return vote_view(s, service.get(s, vote_id), identity)


class BallotBody(BaseModel):
    answers: Annotated[
        list[Annotated[list[Annotated[int, Field(ge=0, le=100)]], Field(max_length=service.MAX_OPTIONS)]],
        Field(
            max_length=service.MAX_QUESTIONS,
            description="per question, the chosen option numbers (0-based); for a ranking, in the order of preference",
        ),
    ]


class ReceiptView(BaseModel):
    vote_id: int
    receipt: str = Field(description="keep it: it shows your ballot is counted, not what you voted")
    check_url: str


@router.post("/votes/{vote_id}/ballots", status_code=201, response_model=ReceiptView)
def cast(request: Request, vote_id: int, body: BallotBody, identity: CurrentIdentity) -> ReceiptView:
    """Cast the caller's ballot (a verified person within the target, once per person)."""
    receipt = service.cast(_db(request), identity, vote_id, body.answers)
    return ReceiptView(
        vote_id=vote_id, receipt=receipt.code, check_url=f"/participation/votes/{vote_id}/receipts/{receipt.code}"
    )


CAST_PATH = "/api/participation/votes/{vote_id}/ballots"


def _plain_answers(scope: Scope, body: bytes) -> list[list[int]] | None:
    """The answers of a JSON body in the plain shape BallotBody takes as it is (lists of option numbers in
    range); None for anything else — the documented route then answers it, validation errors and all."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if not content_type.startswith(b"application/json"):
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    answers = data.get("answers") if isinstance(data, dict) else None
    if not isinstance(answers, list) or len(answers) > service.MAX_QUESTIONS:
        return None
    for chosen in answers:
        if not isinstance(chosen, list) or len(chosen) > service.MAX_OPTIONS:
            return None
        if not all(type(p) is int and 0 <= p <= 100 for p in chosen):
            return None
    return answers


class CastApp:
    """POST …/votes/{vote_id}/ballots as a bare ASGI app put first in the app's routes (`on_install`): no
    dependency solving or response model on the hot path of a city-wide vote. It answers what the documented
    route (`cast` above, kept in OpenAPI) would, with the same errors: a body it does not take as it is goes to
    that route unchanged. The caller's API key is looked up with the rest of the writer's group
    (votes_casting.py); a signed-in browser's session and CSRF token are checked here as core.auth does."""

    def __init__(self, documented: ASGIApp):
        self.documented = documented

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        raw_id = scope["path_params"]["vote_id"]
        answers = _plain_answers(scope, body) if raw_id.isascii() and raw_id.isdigit() else None
        if answers is None:
            sent = False

            async def replay() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.documented(scope, replay, send)
            return
        vote_id = int(raw_id)
        key = key_from_headers(request)
        if key:
            cast = votes_casting.Cast(vote_id, answers, key_digest=key_digest(key))
        else:
            cast = votes_casting.Cast(vote_id, answers, await current_identity(request))
            votes_casting.admit(cast, {})
        receipt = await asyncio.wrap_future(votes_casting.submit(request.app.state.db, cast))
        answer = {
            "vote_id": vote_id,
            "receipt": receipt.code,
            "check_url": f"/participation/votes/{vote_id}/receipts/{receipt.code}",
        }
        await JSONResponse(answer, status_code=201)(scope, receive, send)


class _CastRoute(Route):
    """The bare POST route; other methods go on to the documented routes."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["method"] != "POST":
            return Match.NONE, {}
        return super().matches(scope)


def on_install(app) -> None:
    """Put the bare cast route before the documented one (see CastApp)."""
    documented = next(
        r for r in router.routes if isinstance(r, APIRoute) and r.path == CAST_PATH and "POST" in r.methods
    )
    app.router.routes.insert(
        0, _CastRoute(CAST_PATH, CastApp(documented.app), methods=["POST"], include_in_schema=False)
    )


class ReceiptCheck(BaseModel):
    vote_id: int
    counted: bool
    sealed: bool = Field(description="in the hash chain (ballots join it in shuffled batches)")
    position: int | None
    chain_hash: str | None


@router.get("/votes/{vote_id}/receipts/{code}", response_model=ReceiptCheck)
def check_receipt(request: Request, vote_id: int, code: Annotated[str, Path(max_length=40)]) -> ReceiptCheck:
    """Anyone: whether the ballot of a receipt is in the ballot box and where in the chain."""
    with _db(request).session() as s:
        return ReceiptCheck(**service.check_receipt(s, vote_id, code[:40]))


class ChainView(BaseModel):
    vote_id: int
    ok: bool
    ballots: int
    head: str
    waiting: int
    broken_at: int | None


@router.get("/votes/{vote_id}/chain", response_model=ChainView)
def verify_chain(request: Request, vote_id: int) -> ChainView:
    """Anyone: recompute the vote's whole hash chain and say whether it is intact."""
    with _db(request).session() as s:
        return ChainView(**vars(votes_chain.verify_chain(s, vote_id)))


class OptionResult(BaseModel):
    text: str
    count: int
    points: int | None
    districts: dict[str, int | None]
    age_bands: list[int | None]


class QuestionResult(BaseModel):
    text: str
    kind: str
    options: list[OptionResult]


class Turnout(BaseModel):
    districts: dict[str, int | None]
    age_bands: list[int | None]


class ResultsView(BaseModel):
    vote_id: int
    final: bool
    total: int
    min_count: int = Field(description="breakdown cells below it are null")
    turnout: Turnout
    questions: list[QuestionResult]


@router.get("/votes/{vote_id}/results", response_model=ResultsView)
def results(request: Request, vote_id: int) -> ResultsView:
    """The results by answer, district and age band (8 bands: under 20, 20s … 70s, 80 and over) once the
    vote has closed (or live, if the vote shows them)."""
    return ResultsView(**service.results(_db(request), vote_id))


class VerificationView(BaseModel):
    verified: bool
    method: str | None = None
    district_code: str | None = None
    neighbourhood_code: str | None = None
    birth_year: int | None = None
    home: bool = False
    verifier: str
    two_steps: bool


class VerifyBody(BaseModel):
    phone: Annotated[str | None, Field(max_length=30)] = None
    code: Annotated[str | None, Field(max_length=10)] = None
    resident_id: Annotated[str | None, Field(max_length=40)] = None
    name: Annotated[str | None, Field(max_length=100)] = None
    birth_date: Annotated[str | None, Field(max_length=10)] = None
    birth_year: Annotated[int | None, Field(ge=1900, le=2100)] = None
    district_code: Annotated[str | None, Field(max_length=20)] = None
    neighbourhood_code: Annotated[str | None, Field(max_length=20)] = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None


class CodeSent(BaseModel):
    method: str
    sent_to: str | None = None
    expires_in: int | None = None


def verification_view(request: Request, identity: Identity) -> VerificationView:
    verifier = verification.verifier_of(_db(request))
    with _db(request).session() as s:
        found = verification.verified(s, identity.user_id)
    told = VerificationView(verified=found is not None, verifier=verifier.name, two_steps=verifier.two_steps)
    if found:
        told.method, told.district_code = found.method, found.district_code
        told.neighbourhood_code, told.birth_year = found.neighbourhood_code, found.birth_year
        told.home = found.home_lat is not None
    return told


@router.get("/verification", response_model=VerificationView)
def my_verification(request: Request, identity: CurrentIdentity) -> VerificationView:
    """Whether the caller is verified, and what a vote's target will read (their own data only)."""
    return verification_view(request, identity)


@router.post("/verification/start", response_model=CodeSent)
def start_verification(request: Request, body: VerifyBody, identity: CurrentIdentity) -> CodeSent:
    """sms: send a one-time code to `phone`, stating `birth_year` and `district_code` (or a home point lat/lon)."""
    return CodeSent(**verification.begin(_db(request), identity, body.model_dump()))


@router.post("/verification/finish", response_model=VerificationView)
def finish_verification(request: Request, body: VerifyBody, identity: CurrentIdentity) -> VerificationView:
    """sms: the `code` received; census: `resident_id`, or `name` and `birth_date` (optionally a home point)."""
    verification.finish(_db(request), identity, body.model_dump())
    return verification_view(request, identity)
