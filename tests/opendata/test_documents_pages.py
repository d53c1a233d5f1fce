"""The document pages through HTTP: a publisher uploads, reviews (accept, undo, add) and publishes; the
public sees and searches published documents only; refusals are clear and audited."""

from __future__ import annotations

import re

import httpx

from smartcity.core import audit
from smartcity.opendata import documents
from tests.conftest import make_user, signin
from tests.opendata.upload_helpers import chunked_upload

LETTER = (
    "민원 회신\n민원인 김민수 님의 연락처 010-2345-6789 와 전자우편 minsu@example.com 을 확인하였습니다.\n"
    "가로등 보수 공사를 다음 주에 진행합니다. 문의 02-2133-5678.\n"
)


def csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def upload(
    client, title: str = "가로등 보수 민원 회신", text: str = LETTER, names: str = "김민수", filename="reply.txt"
):
    token = csrf(client, "/opendata/publish/documents")
    return client.post(
        "/opendata/publish/documents",
        data={"csrf_token": token, "title": title, "names": names},
        files={"file": (filename, text.encode(), "text/plain")},
        follow_redirects=False,
    )


def mask_rows(html: str) -> list[tuple[str, str, str]]:
    """(mask id, kind, state) of each row of the review table."""
    return re.findall(r'<tr data-mask="(\d+)" data-kind="([a-z_]+)" data-state="([a-z]+)">', html)


def test_a_publisher_uploads_reviews_and_publishes(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    sent = upload(client)
    assert sent.status_code == 303
    review_url = sent.headers["location"]
    uid = review_url.rsplit("/", 1)[1]
    page = client.get(review_url)
    assert page.status_code == 200
    rows = mask_rows(page.text)
    assert {kind for _, kind, _ in rows} == {"name", "phone", "email"}
    assert all(state == "proposed" for _, _, state in rows)
    assert client.get(f"/opendata/documents/{uid}").status_code == 404  # not public while in review
    assert client.get(f"/opendata/documents/{uid}.json").status_code == 404
    assert client.get(f"/opendata/documents/{uid}.txt").status_code == 404

    token = csrf(client, review_url)
    refused = client.post(f"{review_url}/publish", data={"csrf_token": token})
    assert refused.status_code == 409 and 'data-status="review"' in refused.text
    assert f"{len(rows)}" in refused.text and "%(num)d" not in refused.text  # the undecided masks, counted

    office = re.search(
        r'<tr data-mask="(\d+)" data-kind="phone" data-state="proposed">\s*<td>[^<]*</td><td>02-2133-5678', page.text
    )
    assert office, "the office's number is proposed as a phone"
    client.post(f"{review_url}/masks/{office.group(1)}", data={"csrf_token": token, "decision": "undo"})
    client.post(f"{review_url}/accept-all", data={"csrf_token": token})
    start = LETTER.index("다음 주")
    added = client.post(
        f"{review_url}/masks",
        data={"csrf_token": token, "text": "다음 주", "start": start, "end": start + 4},
        follow_redirects=False,
    )
    assert added.status_code == 303
    done = client.post(f"{review_url}/publish", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/opendata/documents/{uid}"

    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    public = client.get(f"/opendata/documents/{uid}")
    assert public.status_code == 200
    for secret in ("김민수", "2345-6789", "minsu@", "다음 주"):
        assert secret not in public.text
    assert "02-2133-5678" in public.text and "김○○" in public.text
    text = client.get(f"/opendata/documents/{uid}.txt")
    assert text.status_code == 200 and "010-****-****" in text.text and "김민수" not in text.text
    found = client.get("/opendata/documents", params={"q": "가로등 보수공사"})
    assert f'data-uid="{uid}"' in found.text and 'data-total="1"' in found.text
    assert 'data-total="0"' in client.get("/opendata/documents", params={"q": "김민수"}).text
    counted = re.search(r'data-total="1">([^<]*)</p>', found.text).group(1)
    assert "%(" not in counted and "1" in counted  # the count is written in words, not as its msgid
    twin = client.get("/opendata/documents.json", params={"q": "가로등 보수공사"}).json()
    assert twin["total"] == 1 and [d["uid"] for d in twin["documents"]] == [uid]
    assert (
        "김민수" not in str(twin)
        and client.get("/opendata/documents.json", params={"q": "김민수"}).json()["total"] == 0
    )
    one = client.get(f"/opendata/documents/{uid}.json").json()
    assert one["uid"] == uid and "김○○" in one["text"] and "minsu@" not in one["text"]

    with db.session() as s:
        entries = [e.action for e in reversed(audit.entries(s, object_type="document", object_id=uid))]
    assert entries[0] == "upload" and entries[-1] == "publish"
    assert {"read_original", "mask_undone", "mask_accepted", "mask_added"} <= set(entries)


def test_an_upload_that_is_not_what_it_says_is_refused_on_the_page(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    refused = upload(client, filename="reply.pdf")
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    hwp = upload(client, filename="reply.hwp", text="\ufeff")
    assert hwp.status_code == 422
    assert 'data-uid="' not in client.get("/opendata/publish/documents").text


def test_a_declared_huge_body_is_refused_before_it_is_read(db, client):
    make_user(db, "pub", "data_publisher")
    signin(client, "pub")
    token = csrf(client, "/opendata/publish/documents")
    answer = client.post(
        "/opendata/publish/documents",
        content=b"x",
        headers={
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(2 * 1024**3),
            "x-csrf-token": token,
        },
    )
    assert answer.status_code == 413 and "20 MB" in answer.text


def test_only_publishers_upload_and_only_the_owner_reviews(db, client):
    make_user(db, "pub", "data_publisher")
    make_user(db, "pub2", "data_publisher")
    make_user(db, "kim", "citizen")
    assert client.get("/opendata/publish/documents", follow_redirects=False).status_code in (302, 303, 401)
    signin(client, "pub")
    uid = upload(client).headers["location"].rsplit("/", 1)[1]
    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    signin(client, "kim")
    assert client.get("/opendata/publish/documents").status_code == 403
    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    signin(client, "pub2")
    other = client.get(f"/opendata/publish/documents/{uid}")
    assert other.status_code == 403 and "010-2345-6789" not in other.text
    with db.session() as s:
        refusals = [e for e in audit.entries(s, object_type="document", object_id=uid) if e.action == "access_denied"]
    assert [e.actor for e in refusals] == ["pub2"]


def test_a_streamed_upload_without_a_length_stops_being_read_at_the_limit(live, db):
    make_user(db, "pub", "data_publisher")
    total = 10 * documents.MAX_BYTES
    with httpx.Client(base_url=live.url, timeout=60) as client:
        signin(client, "pub")
        status, sent = chunked_upload(live, client, "/opendata/publish/documents", total, "reply.txt")
        # Refused once the limit (plus what the sockets' buffers hold) was read: far from the whole body.
        assert status == 413 and sent < documents.MAX_BYTES * 3, f"{status} after {sent} of {total} bytes"
        assert 'data-uid="' not in client.get("/opendata/publish/documents").text
