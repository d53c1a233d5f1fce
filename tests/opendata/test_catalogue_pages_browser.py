"""The catalogue's pages in Debian's chromium, in Korean: a citizen on a phone finds a dataset by a Korean word,
opens it, sees the preview table, the map and the chart, and downloads its CSV; a publisher on a desktop makes
a dataset, uploads a CSV and follows the upload's and the load's progress to the defects, then publishes it.
axe-core finds no serious or critical violation on these pages."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, make_user
from tests.opendata.catalogue_helpers import BINS, dataset, load, serious_axe_findings

pytestmark = pytest.mark.browser

# Records what the progress views said, across the page change from the form to the load's page.
WATCH_PROGRESS = """
new MutationObserver(() => {
  for (const id of ["upload-status", "load-status"]) {
    const el = document.getElementById(id);
    if (!el) continue;
    const seen = JSON.parse(sessionStorage.getItem("seen") || "[]");
    const text = el.textContent.trim();
    if (text && seen[seen.length - 1] !== text) {
      seen.push(text);
      sessionStorage.setItem("seen", JSON.stringify(seen));
    }
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def axe_clean(page) -> None:
    assert serious_axe_findings(page) == []


def sign_in_korean(page, url: str, username: str) -> None:
    page.goto(url + "/signin")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    page.wait_for_selector(".who")


def test_a_citizen_finds_previews_and_downloads_a_dataset_in_korean(live_app, page):
    dataset(live_app.db, "trash-bins", "강남구 가로 쓰레기통 위치", "Street litter bins", tags=["쓰레기"])
    load(live_app.db, "trash-bins", BINS, "bins.csv")
    dataset(live_app.db, "bus-stops", "버스 정류소 위치", "Bus stops")
    load(live_app.db, "bus-stops", b"id,name\n1,a\n", "stops.csv")

    page.goto(live_app.url + "/")
    page.get_by_role("link", name="열린데이터", exact=True).first.click()
    page.get_by_label("데이터셋 검색").fill("쓰레기통")
    page.get_by_role("button", name="검색").click()
    page.wait_for_url("**/opendata?q=*")
    results = page.locator(".dataset-list > li[data-name]")
    assert results.count() == 1
    axe_clean(page)
    results.get_by_role("link", name="강남구 가로 쓰레기통 위치").click()
    assert page.locator("h1").inner_text() == "강남구 가로 쓰레기통 위치"
    axe_clean(page)

    page.locator(".resource-list h3 a").first.click()
    table = page.locator("table.preview")
    table.wait_for()
    assert table.locator("tbody tr").count() == 4
    assert [c.strip() for c in table.locator("thead th").all_inner_texts()][:2] == ["연번", "자치구"]
    table.get_by_role("link", name="용량").click()  # sorted by size, smallest first, the empty one last
    page.wait_for_selector("th[aria-sort=ascending]")
    assert table.locator("tbody tr td:first-child").all_inner_texts() == ["2", "1", "3", "4"]
    page.wait_for_selector("#resource-map[data-points-state=ready]", timeout=15000)
    assert page.get_attribute("#resource-map", "data-points") == "4"
    assert page.locator("#resource-map path.leaflet-interactive").count() >= 4  # the points, drawn
    page.wait_for_selector(".chart-box[data-state=ready]")
    page.get_by_label("열", exact=True).select_option(label="용량")
    page.wait_for_selector(".chart-box[data-state=ready]")
    assert "용량" in page.locator("figcaption").inner_text()
    bars = page.locator(".chart svg rect.bar")
    assert sum(int(b.get_attribute("data-count")) for b in bars.all()) == 3  # the three sizes given
    axe_clean(page)

    with page.expect_download() as waiting:
        page.get_by_role("link", name="CSV 내려받기").click()
    download = waiting.value
    assert download.suggested_filename == "bins.csv"
    with open(download.path(), "rb") as f:
        assert f.read() == BINS


def test_a_publisher_uploads_a_csv_and_sees_the_progress_and_the_defects(live_app, browser):
    make_user(live_app.db, "eunji", "data_publisher")
    context = browser.new_context(locale="ko-KR", viewport={"width": 1280, "height": 900})
    context.add_init_script(WATCH_PROGRESS)
    page = context.new_page()
    sign_in_korean(page, live_app.url, "eunji")
    page.get_by_role("link", name="데이터 게시").first.click()
    axe_clean(page)
    page.get_by_role("link", name="새 데이터셋").click()
    axe_clean(page)
    page.get_by_label("주소에 쓰는 이름").fill("dumping-2022")
    page.get_by_label("제목(한국어)").fill("강남구 무단투기 단속 현황")
    page.get_by_role("button", name="데이터셋 만들기").click()
    page.wait_for_url("**/opendata/publish/datasets/dumping-2022")
    assert page.get_attribute(".publish-state", "data-published") == "0"
    axe_clean(page)

    # 60,000 rows (about 3 MB): long enough for the progress views to show, with two defective dates.
    lines = ["위반쓰레기,장소,위반일시,lat,lng"]
    lines += [
        f"담배꽁초,대치동 선릉로{n % 500},2022.{n % 12 + 1}.{n % 28 + 1} 10:11,37.50{n % 90},127.05"
        for n in range(60_000)
    ]
    lines[1234] = "담배꽁초,신사동 하나은행,##########,37.5285,127.0364"
    lines[50_001] = "담배꽁초,역삼동,2022.13.45 10:00,37.50,127.04"
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "dumping.csv", "mimeType": "text/csv", "buffer": ("\n".join(lines) + "\n").encode()}],
    )
    page.get_by_role("button", name="파일 적재하기").click()
    page.wait_for_url("**/opendata/publish/loads/*")
    page.wait_for_selector("#load[data-state=done]", timeout=60000)
    assert page.locator("#load-progress").get_attribute("value") == "100"
    assert "적재를 마쳤습니다" in page.locator("#load-status").inner_text()
    defects = page.locator(".defect-table tbody tr")
    assert defects.count() == 2
    assert defects.nth(0).locator("td").all_inner_texts()[:3] == ["1235", "위반일시", "##########"]
    assert defects.nth(1).locator("td").all_inner_texts()[:3] == ["50002", "위반일시", "2022.13.45 10:00"]
    seen = page.evaluate("JSON.parse(sessionStorage.getItem('seen') || '[]')")
    assert any(t.startswith("파일을 보내는 중입니다") for t in seen), seen
    assert any(t.startswith(("파일을 읽고", "행을 저장하는 중입니다")) for t in seen), seen
    axe_clean(page)

    page.get_by_role("link", name="데이터셋으로 돌아가기").click()
    page.get_by_role("button", name="공개하기").click()
    page.wait_for_selector(".publish-state[data-published='1']")
    context.close()
