"""Pictures of proposals (issue 15, item 1) on both stores: the author adds them while the proposal collects
likes, through the JSON API (multipart, as a phone app sends a photo) or the Korean form; they are stored
re-encoded with no EXIF (a phone photo's GPS position is gone), and served as public as the proposal is."""

from __future__ import annotations

import io
import re
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from smartcity.app import create_app
from smartcity.participation.models import Proposal, ProposalImage
from tests.conftest import make_key, make_settings, make_user, signin

API = "/api/participation"
IDEA = {
    "title": "놀이터 그네가 부서졌어요",
    "body": "동네 놀이터 그네 줄이 끊어져서 아이들이 다칠까 걱정됩니다. 새 그네로 바꿔 주세요.",
    "category": "safety",
}
GPS_IFD = 0x8825


def _photo_with_gps() -> bytes:
    """A JPEG as a phone takes it: with an EXIF block naming the camera and where it was."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0131] = "Camera 1.0"  # Software
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 40.0)})
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 40)).save(out, "JPEG", exif=exif)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the fixture does carry a position
    return data


def _app(db, db_url, tmp_path, **rules):
    return create_app(make_settings(db_url, tmp_path, run_jobs=False, **rules), db)


def test_pictures_are_stored_without_exif_and_served_as_public_as_their_proposal(db, db_url, tmp_path):
    app = _app(db, db_url, tmp_path, participation_max_images=3)
    for name, role in (("author", "citizen"), ("other", "citizen"), ("admin1", "admin")):
        make_user(db, name, role)
    key = {n: {"X-API-Key": make_key(db, n)} for n in ("author", "other", "admin1")}
    with TestClient(app) as client:
        pid = client.post(f"{API}/proposals", json=IDEA, headers=key["author"]).json()["id"]
        photo = ("swing.jpg", _photo_with_gps(), "image/jpeg")
        added = client.post(f"{API}/proposals/{pid}/images", files=[("images", photo)], headers=key["author"])
        assert added.status_code == 201, added.text
        [shown] = added.json()["images"]
        served = client.get(shown["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        stored = Image.open(io.BytesIO(served.content))
        assert (stored.size, dict(stored.getexif())) == ((640, 480), {})
        assert b"PhoneMaker" not in served.content and b"Exif" not in served.content
        assert Image.open(io.BytesIO(client.get(shown["thumb_url"]).content)).width <= 320

        other = client.post(f"{API}/proposals/{pid}/images", files=[("images", photo)], headers=key["other"])
        assert (other.status_code, other.json()["error"]["code"]) == (403, "not_author")
        fake = ("swing.jpg", b"<?php echo 'not a picture'; ?>", "image/jpeg")
        bad = client.post(
            f"{API}/proposals/{pid}/images", files=[("images", photo), ("images", fake)], headers=key["author"]
        )
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "not_an_image")
        many = client.post(f"{API}/proposals/{pid}/images", files=[("images", photo)] * 3, headers=key["author"])
        assert (many.status_code, many.json()["error"]["code"]) == (422, "too_many_images")

        client.post(f"{API}/proposals/{pid}/hide", json={"reason": "개인정보 노출"}, headers=key["admin1"])
        assert client.get(shown["url"]).status_code == 404
        assert client.get(shown["url"], headers=key["admin1"]).status_code == 200
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProposalImage)) == 1  # the refused ones left no row
    files = sorted(p.name for p in Path(tmp_path, "var", "uploads", "participation").rglob("*") if p.is_file())
    assert len(files) == 2 and all(name.endswith(".jpg") for name in files)  # … and no file


def test_a_citizen_proposes_with_a_picture_through_the_korean_form(db, db_url, tmp_path):
    app = _app(db, db_url, tmp_path)
    make_user(db, "citizen1", "citizen", language="ko")
    with TestClient(app) as client:
        client.cookies.set("lang", "ko")
        signin(client, "citizen1")
        form = client.get("/participation/proposals/new").text
        assert 'enctype="multipart/form-data"' in form and "사진(선택)" in form
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        data = {**IDEA, "csrf_token": token}
        refused = client.post(
            "/participation/proposals/new", data=data, files=[("images", ("a.gif", b"GIF89a....", "image/gif"))]
        )
        assert refused.status_code == 422 and "a.gif 파일은 JPEG, PNG, WebP 사진이 아닙니다." in refused.text
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Proposal)) == 0  # nothing half-stored
        made = client.post(
            "/participation/proposals/new",
            data=data,
            files=[("images", ("swing.jpg", _photo_with_gps(), "image/jpeg"))],
            follow_redirects=False,
        )
        assert made.status_code == 303
        page = client.get(made.headers["location"]).text
        thumb = re.search(r'<img src="(/api/participation/images/\d+/thumb\.jpg)" alt="제안 사진 1"', page)
        assert thumb and client.get(thumb.group(1)).status_code == 200
