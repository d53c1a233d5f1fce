"""A moderator hides a whole debate and shows it again, in chromium on a phone (390×844) in Korean: with the
reason in the page's own form; meanwhile a citizen finds it neither in the list nor at its address (the page says
there is no such debate), and finds it again, arguments included, once it is shown."""

from __future__ import annotations

import re

import pytest

from smartcity.core import accounts
from smartcity.core.auth import identity_of_user
from smartcity.participation import debates
from tests.conftest import make_user
from tests.participation.helpers import Phones, fits_the_phone, live_server

pytestmark = pytest.mark.browser
TITLE = "망원동 골목에 CCTV를 더 달아야 할까요?"
ARGUMENT = "밤길이 어두워서 꼭 필요합니다."


@pytest.fixture
def server(sqlite_url, tmp_path):
    with live_server(sqlite_url, tmp_path) as live:
        yield live


def _open_a_debate(server) -> str:
    """A citizen's debate with one argument in it (written through the service: the pages that do it have a
    browser test of their own); its page's address."""
    with server.db.session() as s:
        opener = identity_of_user(accounts.get_user(s, "opener"), "session")
        new = debates.NewDebate(TITLE, "골목길 방범용 CCTV를 늘릴지 주민 의견을 모읍니다.", tags="안전")
        debate_id = debates.create(s, opener, new).id
    with server.db.session() as s:
        kim = identity_of_user(accounts.get_user(s, "kim"), "session")
    debates.argue(server.db, kim, debate_id, ARGUMENT, "for")
    return f"/participation/debates/{debate_id}"


def _titles(page) -> list[str]:
    return [t.strip() for t in page.locator(".debate-list li[data-debate-id] > a").all_inner_texts()]


def test_a_moderator_hides_a_debate_and_shows_it_again_on_a_phone(server, browser):
    for name, role in (("opener", "citizen"), ("kim", "citizen"), ("mod", "admin")):
        make_user(server.db, name, role, language="ko")
    debate = _open_a_debate(server)
    with Phones(browser, server) as phones:
        kim = phones.signed_in("kim", "/participation/debates")
        assert TITLE in _titles(kim)

        mod = phones.signed_in("mod", debate)
        hiding = mod.locator("form.moderate-debate")
        hiding.get_by_label("사유").fill("특정인을 비방하는 내용이라 숨깁니다.")
        hiding.get_by_role("button", name="토론 숨기기").click()
        mod.wait_for_selector("form.moderate-debate button:has-text('토론 다시 보이기')")
        assert "숨김: 특정인을 비방하는 내용이라 숨깁니다." in mod.locator("article.debate").inner_text()
        assert ARGUMENT in mod.locator(".side-for").inner_text()  # moderators still read it all
        assert fits_the_phone(mod)

        kim.reload()
        assert TITLE not in _titles(kim)
        answer = kim.goto(server.url + debate)
        assert answer is not None and answer.status == 404
        assert re.search(r"\d+번 토론이 없습니다", kim.locator("body").inner_text())
        assert TITLE not in kim.locator("body").inner_text() and ARGUMENT not in kim.locator("body").inner_text()
        assert fits_the_phone(kim)

        showing = mod.locator("form.moderate-debate")
        showing.get_by_label("사유").fill("이의 신청을 검토한 결과 문제가 없었습니다.")
        showing.get_by_role("button", name="토론 다시 보이기").click()
        mod.wait_for_selector("form.moderate-debate button:has-text('토론 숨기기')")

        answer = kim.goto(server.url + debate)
        assert answer is not None and answer.status == 200
        assert kim.locator("h1").inner_text() == TITLE
        assert ARGUMENT in kim.locator(".side-for").inner_text()
        assert "숨김" not in kim.locator("article.debate").inner_text()
        kim.goto(server.url + "/participation/debates")
        assert TITLE in _titles(kim)
