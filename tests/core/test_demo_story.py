"""The demo tells each role a working story (issue 12 item 3): the demo loaded as `smartcity demo` loads it,
then each role's main page read as that role reads it."""

from __future__ import annotations

import json
import re

import pytest

from smartcity.core.city import load_profile
from smartcity.core.demo import DEMO_PASSWORD, load_demo
from tests.conftest import signin


@pytest.fixture
def demo(db):
    lines = list(load_demo(db, load_profile("seoul")))
    assert lines
    return db


def _as(client, username: str) -> None:
    assert signin(client, username, DEMO_PASSWORD).status_code == 303


def test_the_staff_accounts_unit_has_reports_in_its_queue(demo, client):
    _as(client, "staff")
    queue = client.get("/staff/reports.json").json()
    assert queue["items"], "the demo staff account's queue is empty"


def test_the_overdue_share_of_unresolved_reports_is_realistic(demo, client):
    _as(client, "admin")
    unresolved = client.get("/staff/reports.json", params={"size": 1}).json()["total"]
    overdue = client.get("/staff/reports.json", params={"size": 1, "overdue": 1}).json()["total"]
    assert unresolved > 50
    assert 0.05 <= overdue / unresolved <= 0.40, (overdue, unresolved)


def test_the_operator_has_an_open_incident_in_their_district(demo, client):
    _as(client, "operator")
    answer = client.get("/api/safety/incidents").json()
    assert answer["district"] == "11230"
    assert [i for i in answer["incidents"] if i["status"] == "open"], answer


def test_the_demo_people_are_named_in_korean(demo, client):
    _as(client, "guardian")
    page = client.get("/safety/guardian?lang=ko").text
    names = [json.loads(f'"{n}"') for n in re.findall(r'"name": ?"([^"]+)"', page)]
    assert names and all(re.search("[가-힣]", n) for n in names), names
    assert not re.search(r"\b(Park|Kim|Lee|Choi) [A-Z][a-z]+", page)
