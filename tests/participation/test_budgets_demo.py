"""The demo's participatory budgets (`smartcity demo`): last year's finished with its winners — the third most
voted project skipped, its cost over the money left — and this year's open for the vote, in Korean."""

from __future__ import annotations

import re

from smartcity.core.city import load_profile
from smartcity.core.demo import load_demo

API = "/api/participation/budgets"


def test_the_demo_has_a_finished_budget_and_one_open_for_the_vote(db, demo_lines, client):
    lines = demo_lines
    assert any(line.startswith("demo budgets: last year's") for line in lines), lines
    found = {b["phase"]: b for b in client.get(API).json()["budgets"]}
    assert set(found) == {"results", "voting"}
    assert all(re.search("[가-힣]{2,}", b["title_ko"]) for b in found.values())
    results = client.get(f"{API}/{found['results']['id']}/results").json()
    (area,) = results["areas"]
    assert [(line["votes"], line["winner"]) for line in area["lines"]] == [(35, True), (28, True), (18, False)]
    assert area["ballots"] == 50 and area["spent"] <= area["money"]
    voting = client.get(f"{API}/{found['voting']['id']}/projects").json()["projects"]
    assert voting and all(p["status"] == "selected" for p in voting)
    client.cookies.set("lang", "ko")
    page = client.get(f"/participation/budgets/{found['results']['id']}/results").text
    assert "어린이공원 그늘막 설치" in page and "미선정" in page
    # Loading again adds nothing.
    assert any(line == "demo budgets: already there" for line in load_demo(db, load_profile("seoul")))
    assert len(client.get(API).json()["budgets"]) == 2
