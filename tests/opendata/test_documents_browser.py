"""The review screen in Debian's chromium, in Korean: a publisher selects a stretch of the document with the
mouse's selection and masks that place only, accepts the rest and publishes; the public page shows the masked
text. axe-core finds no serious or critical violation on the review and public pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.core.auth import Identity
from smartcity.opendata import documents
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
TEXT = "민원인 박서준 님, 연락처 010-3456-7890.\n공사 기간: 3월 2일부터. 공사 기간 중 우회하십시오.\n"

# What a mouse drag over the second "공사 기간" leaves: a selection inside one text segment of the document.
SELECT_SECOND = """([needle]) => {
  const box = document.getElementById("review-text");
  for (const seg of box.querySelectorAll("span[data-start]")) {
    const node = seg.firstChild;
    const first = node.textContent.indexOf(needle);
    const at = node.textContent.indexOf(needle, first + 1);
    if (first < 0 || at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + needle.length);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    box.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
    return Number(seg.dataset.start) + at;
  }
  return null;
}"""


def serious(page) -> list:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [(v["id"], [n["target"] for n in v["nodes"][:3]]) for v in found if v["impact"] in ("serious", "critical")]


def test_a_selection_masks_that_place_and_the_public_sees_the_masked_text(live_app, page):
    user_id = make_user(live_app.db, "pub", "data_publisher")
    who = Identity(user_id=user_id, username="pub", role="data_publisher", via="session")
    with live_app.db.session() as s:
        uid = documents.upload(s, who, documents.Upload("notice.txt", TEXT.encode(), "우회 안내", ["박서준"])).uid

    page.goto(live_app.url + "/signin")
    page.locator("input[name=username]").fill("pub")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_selector(".who")
    page.goto(f"{live_app.url}/opendata/publish/documents/{uid}")
    assert page.locator("#review-text mark[data-state=proposed]").count() == 2  # the name and the phone
    assert serious(page) == []

    start = page.evaluate(SELECT_SECOND, ["공사 기간"])
    assert start == TEXT.index("공사 기간", TEXT.index("공사 기간") + 1)
    form = page.locator("#add-mask")
    assert form.locator("input[name=text]").input_value() == "공사 기간"
    assert form.locator("input[name=start]").input_value() == str(start)
    form.get_by_role("button", name="가림 추가").click()
    page.wait_for_selector("tr[data-kind=manual]")
    preview = page.locator("#preview").inner_text()
    assert "공사 기간: 3월 2일부터. ***** 중 우회하십시오." in preview  # the first one is left as it was

    page.get_by_role("button", name="제안된 가림을 모두 수락").click()
    page.wait_for_selector("#review-text mark[data-state=proposed]", state="detached")
    page.locator("#publish").get_by_role("button", name="공개").click()
    page.wait_for_url(f"**/opendata/documents/{uid}")
    shown = page.locator(".document-text").inner_text()
    assert "박○○" in shown and "010-****-****" in shown and "***** 중" in shown
    assert "박서준" not in shown and "3456" not in shown
    assert serious(page) == []
