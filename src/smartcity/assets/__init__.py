"""City asset registry (u-Seoul Net): CCTV cameras, Wi-Fi access points, sensors — kind, position,
district, attributes — with CSV import, a public JSON/GeoJSON API and an exported `nearest()`.

CLI: `smartcity import assets FILE.csv --kind cctv` (also `smartcity assets import …`). See docs/assets.md.
"""

from __future__ import annotations

from smartcity.core.module import Dataset, Module, PlaceSource


def _demo(db, profile):
    """Synthetic cameras and Wi-Fi points in every district, denser in Gangnam (idempotent). Made up:
    the demo ships no official lists; import the real ones with `smartcity import assets`."""
    from smartcity.assets.service import demo_assets

    yield demo_assets(db)


module = Module(
    name="assets",
    audit="smartcity.assets.audit_words:WORDS",
    routers=("smartcity.assets.api:router",),
    permissions={"assets.manage": ()},  # administrators only; reading is public (open data)
    cli="smartcity.assets.cli:commands",
    demo=_demo,
    models="smartcity.assets.models",
    places=(PlaceSource("smartcity.assets.service:named_places", changed_by="assets.changed"),),
    datasets=(
        Dataset(
            "assets",
            "서울시 공공 CCTV·와이파이·센서 위치",
            "smartcity.assets.opendata_rows:assets",
            "CCTV, 공공 와이파이, 센서의 종류와 위치, 자치구를 담습니다.",
            events=("assets.changed",),
            key="id",
            title_en="City CCTV, Wi-Fi and sensor locations",
            description_en="CCTV cameras, public Wi-Fi access points and sensors: kind, position and district.",
            tags=("cctv", "wifi", "sensor"),
            theme="safety",
        ),
    ),
)
