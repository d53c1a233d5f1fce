"""The installable app's server side, on both stores: the manifest in the page's language, its icons, the
service worker at the root with the city's languages and main pages, the shell it precaches being the very
URLs pages ask for, and the offline page in each language."""

from __future__ import annotations

import hashlib
import io
import json
import re

from PIL import Image

from smartcity.core.web import STATIC


def manifest(client, lang: str) -> dict:
    response = client.get(f"/manifest.webmanifest?lang={lang}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    return json.loads(response.text)


def test_the_manifest_names_the_city_in_the_pages_language(client):
    ko, en = manifest(client, "ko"), manifest(client, "en")
    profile = client.app.state.profile
    assert (ko["short_name"], en["short_name"]) == (profile.name("ko"), profile.name("en"))
    assert ko["name"] == f"{profile.name('ko')} 스마트도시" and en["name"] == f"{profile.name('en')} Smart City"
    assert (ko["lang"], en["lang"]) == ("ko", "en")
    assert "%(city)s" not in ko["description"] and profile.name("ko") in ko["description"]
    for m in (ko, en):
        assert m["display"] == "standalone" and m["start_url"].startswith(m["scope"])


def test_the_manifests_icons_are_served_at_their_sizes_with_a_maskable_one(client):
    icons = manifest(client, "en")["icons"]
    assert {i["purpose"] for i in icons} == {"any", "maskable"}
    for icon in icons:
        response = client.get(icon["src"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert f"{image.width}x{image.height}" == icon["sizes"]
    assert {i["sizes"] for i in icons if i["purpose"] == "any"} == {"192x192", "512x512"}
    # A maskable icon fills its square: a launcher's mask must find no transparent corner.
    maskable = next(i for i in icons if i["purpose"] == "maskable")
    corner = Image.open(io.BytesIO(client.get(maskable["src"]).content)).convert("RGBA").getpixel((0, 0))
    assert corner[3] == 255


def test_every_page_links_the_manifest_theme_colour_and_touch_icon(client):
    page = client.get("/signin?lang=en").text
    assert re.search(r'<link rel="manifest" href="/manifest.webmanifest\?lang=en">', page)
    theme = re.search(r'<meta name="theme-color" content="([^"]+)">', page).group(1)
    assert theme == manifest(client, "en")["theme_color"]
    touch = re.search(r'<link rel="apple-touch-icon" href="([^"]+)">', page).group(1)
    image = Image.open(io.BytesIO(client.get(touch).content))
    assert image.size == (180, 180)


def test_asset_urls_name_the_files_content(client):
    page = client.get("/reports/new?lang=en").text
    for url in re.findall(r'(?:href|src)="(/static/build/[^"?]+\.(?:css|js))\?v=([0-9a-f]+)"', page):
        path, stamp = url
        content = (STATIC / "build" / path.removeprefix("/static/build/")).read_bytes()
        assert stamp == hashlib.sha256(content).hexdigest()[:12], path


def test_the_service_worker_is_served_at_the_root_with_the_city_and_the_pages_shell(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    first, _, body = response.text.partition("\n")
    site = json.loads(re.fullmatch(r"self\.SHELL = (.*);", first).group(1))
    profile = client.app.state.profile
    assert site["languages"] == list(profile.languages) and site["language"] == profile.language
    home = client.get("/?lang=en").text
    assert "/" in site["pages"]
    for href in re.findall(r'<p class="home-actions">(.*?)</p>', home, re.S)[0].split('href="')[1:]:
        assert href.split('"')[0] in site["pages"]
    # The shell it keeps is what the pages ask for: the form's stylesheets and scripts, by the same URLs.
    form = client.get("/reports/new?lang=en").text
    wanted = re.findall(r'(?:href|src)="(/static/build/[^"]+)"', form)
    assert wanted and all(url in body for url in wanted), [u for u in wanted if u not in body]


def test_the_offline_page_in_each_language(client):
    ko = client.get("/offline?lang=ko")
    en = client.get("/offline?lang=en")
    assert ko.status_code == en.status_code == 200
    assert "<h1>인터넷에 연결되어 있지 않습니다</h1>" in ko.text
    assert "<h1>You are offline</h1>" in en.text
    assert 'href="/reports/new"' in en.text  # the main actions, declared by the modules
