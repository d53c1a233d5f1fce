"""Issue 15's 'done when' for proposals, in chromium on a phone (390×844) in Korean: a citizen proposes, two
neighbours like it past the threshold, the debate opens, participants (one replying to the other) pass the
second threshold, and the department's staff answer from their queue."""

from __future__ import annotations

import re

import pytest

from tests.conftest import make_user
from tests.participation.helpers import Phones, fits_the_phone, live_server


@pytest.fixture
def server(sqlite_url, tmp_path):
    with live_server(sqlite_url, tmp_path, participation_debate_likes=2, participation_answer_participants=2) as live:
        yield live


def test_a_proposal_goes_from_likes_to_debate_to_the_citys_answer_on_a_phone(server, browser):
    for name in ("author", "fan1", "fan2"):
        make_user(server.db, name, "citizen", language="ko")
    make_user(server.db, "staff1", "staff", department="city-transport", language="ko")
    with Phones(browser, server) as phones:
        page = phones.signed_in("author", "/participation/proposals/new")
        page.get_by_label("제목").fill("퇴근길 버스 배차 간격을 줄여 주세요")
        page.get_by_label("무엇을 왜 제안하시나요?").fill(
            "저녁 6시에서 8시 사이 472번 버스가 20분마다 와서 정류장이 붐빕니다."
        )
        page.locator("select[name=category]").select_option("transport")
        page.get_by_role("button", name="제안하기").click()
        page.wait_for_url(re.compile(r".*/participation/proposals/\d+$"))
        proposal = page.url
        assert page.locator("article.proposal").get_attribute("data-status") == "open"
        assert page.locator(".status").first.inner_text() == "공감 모으는 중"
        assert fits_the_phone(page)  # nothing wider than the phone

        fans = []
        for name in ("fan1", "fan2"):
            fan = phones.signed_in(name, proposal.removeprefix(server.url))
            fan.get_by_role("button", name="공감하기").click()
            fan.wait_for_selector("article.proposal")
            fans.append(fan)
        assert fans[1].locator("article.proposal").get_attribute("data-status") == "debate"
        assert "공개 토론" in fans[1].locator(".status").first.inner_text()

        first, second = fans
        first.reload()
        first.get_by_label("의견").fill("저도 매일 20분씩 기다립니다. 꼭 필요합니다.")
        first.get_by_role("button", name="토론 참여하기").click()
        first.wait_for_selector("li.comment")
        assert first.locator("article.proposal").get_attribute("data-status") == "debate"
        second.reload()
        comment = second.locator("li.comment").first
        comment.locator("summary", has_text="답글").click()
        comment.get_by_label("답글 내용").fill("배차를 늘리면 출근길도 나아질 것 같습니다.")
        comment.get_by_role("button", name="답글 달기").click()
        second.wait_for_selector("ul.replies li.comment")
        assert second.locator("article.proposal").get_attribute("data-status") == "answer_due"
        assert "공식 답변 대기" in second.locator(".status").first.inner_text()

        staff = phones.signed_in("staff1", "/participation/queue")
        staff.get_by_role("link", name="퇴근길 버스 배차 간격을 줄여 주세요").click()
        staff.locator("select[name=status]").select_option("partly")
        staff.get_by_label("사유", exact=True).fill(
            "다음 달부터 저녁 시간대 472번 버스를 4대 늘려 배차 간격을 12분으로 줄입니다."
        )
        staff.get_by_role("button", name="답변 게시").click()
        staff.wait_for_selector("section.answer")
        assert staff.locator("article.proposal").get_attribute("data-status") == "answered"

        page.reload()
        answer = page.locator("section.answer")
        assert "일부 수용" in answer.inner_text() and "12분으로 줄입니다" in answer.inner_text()
        assert page.locator(".status").first.inner_text() == "답변 완료"
