"""The benchmark's kept synthetic set (bench/bench_analytics.py): made once, reused while its manifest matches,
made again when the generator or its inputs change, never taken from a run stopped halfway."""

from __future__ import annotations

import json

import pyarrow.dataset as ds

from bench import bench_analytics
from smartcity.analytics import synthetic
from smartcity.analytics.synthetic import hubs_from


def _files(phone) -> set[str]:
    # Every generation names its files after a fresh run id: the same names mean the same files.
    return {p.name for p in phone.rglob("*.parquet")}


def test_a_kept_set_is_reused_until_its_manifest_no_longer_matches(tmp_path, seoul, monkeypatch):
    hubs = hubs_from(seoul, seed=3)
    folder = tmp_path / "analytics-20k"
    phone, made = bench_analytics.dataset(hubs, 20_000, 0, folder)
    assert made is not None and ds.dataset(phone, format="parquet").count_rows() == 20_000
    first = _files(phone)
    assert json.loads((folder / "generation.json").read_text())["seconds"] >= 0

    again, made = bench_analytics.dataset(hubs, 20_000, 0, folder)
    assert (again, made) == (phone, None) and _files(again) == first

    monkeypatch.setattr(synthetic, "VERSION", synthetic.VERSION + 1)
    phone, made = bench_analytics.dataset(hubs, 20_000, 0, folder)
    assert made is not None and _files(phone).isdisjoint(first)
    assert json.loads((folder / "manifest.json").read_text())["generator"] == synthetic.VERSION

    _, made = bench_analytics.dataset(hubs, 20_000, 1, folder)
    assert made is not None
    other_hubs = hubs_from(seoul, seed=4)  # other nightlife hubs: the rows drawn differ
    _, made = bench_analytics.dataset(other_hubs, 20_000, 1, folder)
    assert made is not None


def test_a_set_left_halfway_is_not_taken_for_a_kept_one(tmp_path, seoul):
    hubs = hubs_from(seoul, seed=3)
    folder = tmp_path / "analytics-10k"
    (folder / "phone" / "day=2026-03-02").mkdir(parents=True)
    (folder / "phone" / "day=2026-03-02" / "partial.parquet").write_bytes(b"PAR1")  # no manifest: stopped early
    phone, made = bench_analytics.dataset(hubs, 10_000, 0, folder)
    assert made is not None
    assert "partial.parquet" not in _files(phone)
    assert ds.dataset(phone, format="parquet").count_rows() == 10_000
    assert not folder.with_name("analytics-10k.building").exists()
