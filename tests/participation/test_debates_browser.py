"""Standalone debates in chromium on a phone (390×844) in Korean: a citizen opens a debate on a question with a
tag, it is found by its tag, a neighbour argues against and another for, an argument is agreed with, and one is
reported to the moderators, all without leaving the phone's width."""

from __future__ import annotations

import re

import pytest

from tests.conftest import make_user
from tests.participation.helpers import Phones, fits_the_phone, live_server


@pytest.fixture
def server(sqlite_url, tmp_path):
    with live_server(sqlite_url, tmp_path) as live:
        yield live


def test_a_debate_is_opened_found_argued_and_reported_on_a_phone(server, browser):
    for name in ("opener", "kim", "lee", "mod"):
        make_user(server.db, name, "admin" if name == "mod" else "citizen", language="ko")
    with Phones(browser, server) as phones:
        page = phones.signed_in("opener", "/participation/debates/new")
        page.get_by_label("토론할 질문").fill("심야 버스를 새벽 4시까지 늘려야 할까요?")
        page.get_by_label("무엇이 쟁점인가요?").fill(
            "심야 버스 운행 시간을 늘리면 비용이 들지만 새벽 출근자가 편해집니다."
        )
        page.get_by_label("태그(선택, 쉼표로 구분)").fill("심야버스, 교통")
        page.get_by_role("button", name="토론 시작하기").click()
        page.wait_for_url(re.compile(r".*/participation/debates/\d+$"))
        debate = page.url.removeprefix(server.url)
        assert page.locator("article.debate").get_attribute("data-open") == "true"
        assert fits_the_phone(page)

        page.goto(server.url + "/participation/debates")
        page.get_by_label("태그").fill("심야버스")
        page.get_by_role("button", name="검색").click()
        assert page.locator(".debate-list li").count() == 1
        assert "심야 버스" in page.locator(".debate-list li").first.inner_text()

        kim = phones.signed_in("kim", debate)
        kim.get_by_role("radio", name="반대 의견").check()
        kim.get_by_label("내 의견").fill("이용객이 적은 시간이라 예산 낭비입니다.")
        kim.get_by_role("button", name="내 의견 올리기").click()
        kim.wait_for_selector(".side-against li.comment")

        lee = phones.signed_in("lee", debate)
        lee.get_by_role("radio", name="찬성 의견").check()
        lee.get_by_label("내 의견").fill("새벽 근무자에게는 유일한 교통수단입니다.")
        lee.get_by_role("button", name="내 의견 올리기").click()
        lee.wait_for_selector(".side-for li.comment")
        against = lee.locator(".side-against li.comment").first
        against.get_by_role("button", name="찬성", exact=True).click()
        lee.wait_for_selector(".side-against button[aria-pressed=true]")
        against = lee.locator(".side-against li.comment").first
        assert "1" in against.locator(".up").inner_text()
        assert "참여자 2명" in lee.locator(".participants").inner_text()

        against.locator("summary", has_text="신고").click()
        against.get_by_role("radio", name="스팸이나 광고").check()
        against.get_by_role("button", name="신고 보내기").click()
        lee.wait_for_selector(".reported[role=status]")
        assert "감사합니다" in lee.locator(".reported[role=status]").inner_text()
        assert fits_the_phone(lee)

        mod = phones.signed_in("mod", "/participation/moderation")
        reported = mod.locator(".reported-comments li[data-comment-id]")
        assert reported.count() == 1 and "스팸이나 광고: 1" in reported.first.inner_text()
