"""A participatory budget in Debian's chromium, on a phone (390×844), in Korean: staff open a budget, a citizen
proposes two projects, staff review them, the citizen supports them, staff open the vote, the verified citizen
spends the money on a ballot (the running total shown as they choose; one project too many is refused in the
page with the reason), and the results show the
winners — every phase through the pages."""

from __future__ import annotations

import pytest

from smartcity.core import accounts
from smartcity.core.auth import identity_of_user
from smartcity.participation import verification
from tests.conftest import make_user
from tests.helpers import BROWSER_TIMEOUT
from tests.participation.helpers import Phones, fits_the_phone, live_server

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url, tmp_path):
    settings = dict(participation_vote_verifier="census", participation_budget_min_count=1, run_jobs=True)
    with live_server(sqlite_url, tmp_path, **settings) as live:
        yield live


def _next_phase(page, name: str) -> None:
    page.get_by_role("button", name=f"다음 단계로: {name}").click()
    page.wait_for_selector(f"article.budget .phase-now:has-text('{name}')", timeout=BROWSER_TIMEOUT)


def test_a_budget_runs_through_its_phases_to_winners_on_a_phone_in_korean(server, browser):
    make_user(server.db, "staff1", "staff", department="city-transport")
    make_user(server.db, "citizen1", "citizen")
    verification.load_census(server.db, "resident_id,district,birth_year\nr-1,11230,1985\n")
    with server.db.session() as s:
        citizen = identity_of_user(accounts.get_user(s, "citizen1"), "session")
    verification.finish(server.db, citizen, {"resident_id": "r-1"})
    with Phones(browser, server) as phones:
        staff = phones.signed_in("staff1", "/participation/budgets")
        staff.get_by_role("link", name="새 주민참여예산").click()
        staff.get_by_label("제목(한국어)").fill("우리 동네 주민참여예산")
        staff.get_by_label("시 전체 예산(원)").fill("100,000,000")
        staff.get_by_role("button", name="주민참여예산 열기").click()
        staff.wait_for_selector("article.budget[data-phase=proposing]", timeout=BROWSER_TIMEOUT)
        budget_url = staff.url
        assert staff.locator("h1").inner_text() == "우리 동네 주민참여예산"

        person = phones.signed_in("citizen1", budget_url.removeprefix(server.url))
        for title, cost in (("어린이공원 그늘막 설치", "60000000"), ("골목길 보안등 교체", "50000000")):
            person.get_by_label("제목").fill(title)
            person.get_by_label("무엇을 왜 해야 하나요?").fill(
                f"{title}이 필요합니다. 여름마다 주민들이 불편을 겪고 있습니다."
            )
            person.get_by_label("비용(원)").fill(cost)
            person.get_by_role("button", name="제안하기", exact=True).click()
            person.wait_for_selector(f".project h3:has-text('{title}')", timeout=BROWSER_TIMEOUT)

        staff.reload()
        _next_phase(staff, "사업 검토")
        for i in range(2):
            project = staff.locator(".project[data-status=proposed]").first
            project.get_by_label("실현 가능").check()
            project.get_by_role("button", name="검토 결과 저장").click()
            staff.wait_for_selector(f".project[data-status=feasible] >> nth={i}", timeout=BROWSER_TIMEOUT)
        _next_phase(staff, "사업 선정")

        person.reload()
        for _ in range(2):
            person.locator(".project[data-status=feasible]").get_by_role("button", name="지지하기").first.click()
            person.wait_for_load_state()
        assert person.locator(".project .supported").count() == 2
        assert person.locator(".project .supports").first.inner_text() == "지지 1명"

        staff.reload()
        _next_phase(staff, "투표")
        person.reload()
        ballot = person.locator("form#ballot")
        assert "비용 합계는 100,000,000원을 넘을 수 없습니다" in ballot.inner_text()
        total = ballot.locator("#ballot-total")
        assert total.get_attribute("aria-live") == "polite"
        assert total.inner_text() == "고른 사업 0원 · 남은 예산 100,000,000원"
        ballot.get_by_label("어린이공원 그늘막 설치").check()
        assert total.inner_text() == "고른 사업 60,000,000원 · 남은 예산 40,000,000원"  # live, as chosen
        # The page refuses the choice that goes over, says why at once, and keeps the total.
        ballot.get_by_label("골목길 보안등 교체").click()
        alert = ballot.get_by_role("alert")
        alert.wait_for(timeout=BROWSER_TIMEOUT)
        assert "50,000,000원으로, 남은 예산 40,000,000원보다 많아 담지 않았습니다" in alert.inner_text()
        assert not ballot.get_by_label("골목길 보안등 교체").is_checked()
        assert total.inner_text() == "고른 사업 60,000,000원 · 남은 예산 40,000,000원"
        assert fits_the_phone(person)
        ballot.get_by_role("button", name="투표하기").click()
        # The receipt, shown once; checking it says the ballot is in the box, never what it chose.
        code = person.locator(".receipt-code")
        code.wait_for(timeout=BROWSER_TIMEOUT)
        receipt = code.inner_text()
        assert person.locator(".receipt-check").get_attribute("data-counted") == "yes"
        assert "어린이공원" not in person.locator("main").inner_text()
        assert person.locator("section.box").get_attribute("data-ok") == "yes"
        person.goto(budget_url)
        voted = person.locator("p.voted")
        voted.wait_for(timeout=BROWSER_TIMEOUT)
        assert "이 주민참여예산에 투표했습니다" in voted.inner_text()

        staff.reload()
        _next_phase(staff, "결과")
        staff.get_by_role("link", name="결과 보기").click()
        rows = staff.locator("table.results tbody tr")
        rows.first.wait_for(timeout=BROWSER_TIMEOUT)
        assert rows.first.locator("td").all_inner_texts() == ["어린이공원 그늘막 설치\n60,000,000원", "1", "선정"]
        assert fits_the_phone(staff)  # the table fits the phone
        assert rows.nth(1).locator("td").all_inner_texts()[-1] == "미선정"

        # Anyone checks the receipt on the standalone page: counted in the published results.
        stranger = phones.anonymous(f"{budget_url.removeprefix(server.url)}/check")
        stranger.get_by_label("영수증 번호").fill(receipt.upper())
        stranger.get_by_role("button", name="확인하기").click()
        stranger.wait_for_selector(".receipt-check[data-counted=yes]", timeout=BROWSER_TIMEOUT)
        assert "공개된 결과에 집계되었습니다" in stranger.locator(".receipt-check").inner_text()
        assert fits_the_phone(stranger)
        assert staff.get_by_role("link", name="내려받기(CSV)").get_attribute("href").endswith("/results.csv")
