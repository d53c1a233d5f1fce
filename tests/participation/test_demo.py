"""The demo tells the participation story (issue 15 through issue 12's demo): `smartcity demo`'s loader leaves
Korean proposals in each phase a visitor should meet, the debate one in the demo staff's queue, and the story
stays live (the demo citizen's like counts)."""

from __future__ import annotations

import re

from smartcity.core.city import load_profile
from smartcity.core.demo import load_demo
from tests.conftest import make_key

API = "/api/participation"


def test_the_demo_has_a_proposal_in_each_phase_in_korean(db, demo_lines, client):
    lines = demo_lines
    assert any(line.startswith("demo proposals: one collecting likes") for line in lines), lines
    found = client.get(f"{API}/proposals").json()["proposals"]
    phases = {p["status"]: p for p in found}
    assert len(found) == 3 and set(phases) == {"open", "debate", "answered"}, [p["status"] for p in found]
    assert all(re.search("[가-힣]{2,}", p["title"]) and re.search("[가-힣]{2,}", p["body"]) for p in found)

    collecting, debating, answered = phases["open"], phases["debate"], phases["answered"]
    rules = collecting["thresholds"]
    assert 0 < collecting["likes"] < rules["debate_likes"]
    assert debating["likes"] >= rules["debate_likes"] and 0 < debating["participants"] < rules["answer_participants"]
    assert answered["participants"] >= rules["answer_participants"]
    assert answered["answer"]["status"] == "accepted" and re.search("[가-힣]", answered["answer"]["reasons"])
    assert answered["answer"]["follow_ups"], answered["answer"]

    client.cookies.set("lang", "ko")
    page = client.get(f"/participation/proposals/{debating['id']}").text
    assert "공개 토론" in page and "막차 연장이 꼭 필요합니다" in page
    debate = client.get(f"{API}/proposals/{debating['id']}/comments").json()["comments"]
    proposer = debate[0]  # the proposer's words are pinned on top
    assert proposer["by_author"] and proposer["up"] == 1 and re.search("[가-힣]", proposer["body"])
    assert any(reply["replies"] for reply in debate), debate  # a thread, not a flat list

    staff = {"X-API-Key": make_key(db, "staff")}
    queue = client.get(f"{API}/queue", headers=staff).json()["proposals"]
    assert [p["id"] for p in queue] == [debating["id"]]

    citizen = {"X-API-Key": make_key(db, "publisher")}
    liked = client.put(f"{API}/proposals/{collecting['id']}/like", headers=citizen)
    assert liked.status_code == 200 and liked.json()["likes"] == collecting["likes"] + 1


def test_loading_the_demo_again_adds_no_proposal(db, demo_lines, client):
    again = list(load_demo(db, load_profile("seoul")))
    assert "demo proposals: already there" in again
    assert len(client.get(f"{API}/proposals").json()["proposals"]) == 3


def test_the_demo_proposals_are_in_the_profiles_demo_district(db, demo_lines, client):
    """The district is looked up by its code: by row id (the bug) the code "11230" matched no row, and every
    demo proposal fell back to the whole city."""
    district = load_profile("seoul").demo_district
    found = client.get(f"{API}/proposals").json()["proposals"]
    assert found and {p["district_code"] for p in found} == {district}, [p["district_code"] for p in found]
