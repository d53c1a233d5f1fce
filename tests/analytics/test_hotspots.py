"""Getis-Ord Gi* hot spots over H3 cells: a cluster of high values is hot, a flat field has none."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd

from smartcity.analytics.hotspots import classify, hot_spots

CENTRE = h3.latlng_to_cell(37.5663, 126.9779, 8)


def test_a_cluster_of_high_values_is_a_hot_spot_and_its_far_side_is_not():
    field = list(h3.grid_disk(CENTRE, 6))
    cluster = set(h3.grid_disk(CENTRE, 1))
    rng = np.random.default_rng(1)
    values = [200.0 + rng.normal(0, 5) if c in cluster else 10.0 + rng.normal(0, 5) for c in field]
    found = hot_spots(pd.Series(field), pd.Series(values), permutations=499).set_index("cell")
    assert found.loc[CENTRE, "class"] == "hot_99"
    assert found.loc[CENTRE, "z"] > 3
    far = [c for c in field if h3.grid_distance(CENTRE, c) == 6]
    assert all(not found.loc[c, "class"].startswith("hot") for c in far)


def test_a_flat_field_has_no_hot_spots():
    field = list(h3.grid_disk(CENTRE, 5))
    found = hot_spots(pd.Series(field), pd.Series([50.0] * len(field)), permutations=199)
    assert not found["class"].str.startswith("hot").any()


def test_significance_classes():
    assert classify(2.9, 0.004) == "hot_99"
    assert classify(-2.1, 0.03) == "cold_95"
    assert classify(1.7, 0.08) == "hot_90"
    assert classify(0.5, 0.4) == "not_significant"


def test_a_flat_field_says_so_instead_of_undefined_scores():
    field = list(h3.grid_disk(CENTRE, 2))
    found = hot_spots(pd.Series(field), pd.Series([7.0] * len(field)), permutations=0)
    assert set(found["class"]) == {"not_significant"} and found["z"].notna().all() and (found["p"] == 1.0).all()
