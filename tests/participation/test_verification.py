"""Verification before a first vote (issue 15, item 3) on both stores: the SMS one-time code (expiry, wrong
tries, replay, sends per phone and per account, the code kept only as a hash) and the census verifier over
a residents register loaded with `smartcity participation load-census`."""

from __future__ import annotations

import re
from datetime import timedelta

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from smartcity.app import create_app
from smartcity.core.db import utcnow
from smartcity.core.models import AuditEntry
from smartcity.core.notify import Notification
from smartcity.participation.voting_models import Resident, SmsCode, Verification
from tests.conftest import make_key, make_settings, make_user

API = "/api/participation/verification"
CLAIM = {"birth_year": 1990, "district_code": "11010"}


def _last_code(db, phone: str) -> str:
    with db.session() as s:
        body = s.scalar(select(Notification.body).where(Notification.to == phone).order_by(Notification.id.desc()))
    return re.search(r"(?<!\d)(\d{6})(?!\d)", body).group(1)


def _refusals(db) -> list[str]:
    with db.session() as s:
        rows = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "verify_refused").order_by(AuditEntry.id))
        return [d["reason"] for d in rows]


def test_an_sms_code_is_used_once_expires_and_dies_after_wrong_tries(db, db_url, tmp_path):
    settings = make_settings(db_url, tmp_path, run_jobs=False, participation_vote_code_attempts=3)
    app = create_app(settings, db)
    make_user(db, "kim", "citizen", language="ko")
    headers = {"X-API-Key": make_key(db, "kim")}
    with TestClient(app) as client:
        assert client.post(f"{API}/finish", json={"code": "123456"}, headers=headers).json()["error"]["code"] == (
            "no_code"
        )
        sent = client.post(f"{API}/start", json=CLAIM | {"phone": "010-1234-5678"}, headers=headers)
        assert sent.status_code == 200 and sent.json()["sent_to"] == "*******5678"
        code = _last_code(db, "01012345678")
        with db.session() as s:  # the message is in Korean; the table keeps only a keyed hash of the code
            body = s.scalar(select(Notification.body).where(Notification.to == "01012345678"))
            assert "인증번호" in body
            assert code not in s.scalar(select(SmsCode.code_hash))
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        first = client.post(f"{API}/finish", json={"code": wrong}, headers=headers)
        assert (first.status_code, first.json()["error"]["details"]["attempts_left"]) == (422, 2)
        done = client.post(f"{API}/finish", json={"code": code}, headers=headers)
        assert done.status_code == 200 and done.json()["verified"] is True
        assert done.json()["district_code"] == "11010" and done.json()["birth_year"] == 1990
        replay = client.post(f"{API}/finish", json={"code": code}, headers=headers)
        assert replay.json()["error"]["code"] == "code_used"

        client.post(f"{API}/start", json=CLAIM | {"phone": "010-1234-5678"}, headers=headers)
        code = _last_code(db, "01012345678")
        for _ in range(3):
            client.post(f"{API}/finish", json={"code": wrong}, headers=headers)
        dead = client.post(f"{API}/finish", json={"code": code}, headers=headers)
        assert dead.json()["error"]["code"] == "code_expired"

        client.post(f"{API}/start", json=CLAIM | {"phone": "010-1234-5678"}, headers=headers)
        code = _last_code(db, "01012345678")
        with db.session() as s:
            s.execute(update(SmsCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        late = client.post(f"{API}/finish", json={"code": code}, headers=headers)
        assert late.json()["error"]["code"] == "code_expired"
    assert _refusals(db) == ["no_code", "wrong_code", "code_used", "wrong_code", "wrong_code", "code_expired"] + [
        "code_expired",
        "code_expired",
    ]


def test_codes_are_rate_limited_per_phone_and_per_account(db, db_url, tmp_path):
    rules = dict(participation_vote_sends_per_phone=2, participation_vote_sends_per_account=3)
    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, **rules), db)
    for name in ("kim", "lee"):
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("kim", "lee")}
    with TestClient(app) as client:

        def send(who, phone):
            return client.post(f"{API}/start", json=CLAIM | {"phone": phone}, headers=key[who])

        assert [send("kim", "01011110000").status_code for _ in range(2)] == [200, 200]
        by_phone = send("lee", "01011110000")  # another account, the same phone: the phone's limit holds
        assert (by_phone.status_code, by_phone.json()["error"]["code"]) == (429, "too_many_codes")
        assert send("kim", "01022220000").status_code == 200
        by_account = send("kim", "01033330000")
        assert (by_account.status_code, by_account.json()["error"]["code"]) == (429, "too_many_codes")
        bad = client.post(f"{API}/start", json=CLAIM | {"phone": "12"}, headers=key["lee"])
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "bad_phone")
        anonymous = client.post(f"{API}/start", json=CLAIM | {"phone": "01044440000"})
        assert anonymous.status_code == 401
    with db.session() as s:
        assert len(s.scalars(select(Notification.id).where(Notification.channel == "sms")).all()) == 3


CENSUS = """resident_id,name,birth_date,district,neighbourhood,birth_year
R-0001,홍길동,1980-03-01,11010,,
,김영희,1992-11-30,11020,,
R-0003,,,99999,,1970
"""


def test_the_census_verifier_checks_the_residents_register(db, db_url, tmp_path, monkeypatch):
    from smartcity.cli import main
    from smartcity.settings import get_settings

    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    monkeypatch.setenv("SMARTCITY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SMARTCITY_SECRET_KEY", "test-secret")  # the app's below: the same keyed hashes
    get_settings.cache_clear()
    register = tmp_path / "residents.csv"
    register.write_text(CENSUS, encoding="utf-8")
    try:
        loaded = CliRunner().invoke(main, ["participation", "load-census", str(register)])
    finally:
        get_settings.cache_clear()
    assert loaded.exit_code == 0, loaded.output
    assert "2 residents loaded, 1 rows skipped" in loaded.output and "line 4: unknown district" in loaded.output
    with db.session() as s:
        kept = s.scalars(select(Resident)).all()
        assert all("R-0001" not in (r.resident_hash or "") and r.identity_hash for r in kept)

    app = create_app(make_settings(db_url, tmp_path, run_jobs=False, participation_vote_verifier="census"), db)
    for name in ("hong", "hong2", "kim", "stranger"):
        make_user(db, name, "citizen")
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("hong", "hong2", "kim", "stranger")}
    with TestClient(app) as client:
        assert client.get(API, headers=key["hong"]).json() | {} == {
            "verified": False,
            "method": None,
            "district_code": None,
            "neighbourhood_code": None,
            "birth_year": None,
            "home": False,
            "verifier": "census",
            "two_steps": False,
        }
        hong = client.post(f"{API}/finish", json={"resident_id": "R-0001"}, headers=key["hong"]).json()
        assert (hong["verified"], hong["method"], hong["district_code"], hong["birth_year"]) == (
            True,
            "census",
            "11010",
            1980,
        )
        by_name = {"name": " 김영희 ", "birth_date": "1992-11-30"}
        kim = client.post(f"{API}/finish", json=by_name, headers=key["kim"]).json()
        assert (kim["district_code"], kim["birth_year"]) == ("11020", 1992)
        stranger = client.post(f"{API}/finish", json={"resident_id": "R-9999"}, headers=key["stranger"])
        assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "not_resident")
        # A home point must lie in the registered district (Gangnam is not Jongno).
        far = client.post(
            f"{API}/finish", json={"resident_id": "R-0001", "lat": 37.5172, "lon": 127.0473}, headers=key["hong2"]
        )
        assert (far.status_code, far.json()["error"]["code"]) == (422, "bad_home")
        client.post(f"{API}/finish", json={"resident_id": "R-0001"}, headers=key["hong2"])
    with db.session() as s:
        hashes = dict(s.execute(select(Verification.user_id, Verification.identity_hash)).all())
    assert len(hashes) == 3 and len(set(hashes.values())) == 2  # hong's two accounts are one person
    assert _refusals(db) == ["not_resident", "bad_home"]
