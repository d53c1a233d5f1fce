"""Getis-Ord Gi* hot spots over a measure per H3 cell (esda), with z-scores, p-values and significance classes.

Neighbours are a cell's ring of six (H3 grid distance 1) among the cells given; Gi* includes the cell itself.
Cells without any neighbour in the set are left out (their statistic is undefined)."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd


def classify(z: float, p: float) -> str:
    """hot/cold at 99, 95 or 90 % confidence, else not significant."""
    for level, cut in (("99", 0.01), ("95", 0.05), ("90", 0.10)):
        if p <= cut:
            return f"{'hot' if z > 0 else 'cold'}_{level}"
    return "not_significant"


def hot_spots(cells: pd.Series, values: pd.Series, permutations: int = 999, seed: int = 12345) -> pd.DataFrame:
    """Gi* of `values` over `cells` (H3 strings): cell, value, z, p (by permutation), class."""
    import libpysal
    from esda.getisord import G_Local

    frame = pd.DataFrame({"cell": cells.to_numpy(), "value": values.to_numpy(dtype=float)})
    frame = frame.groupby("cell", as_index=False)["value"].sum()
    index = {c: i for i, c in enumerate(frame["cell"])}
    neighbours = {i: [index[n] for n in h3.grid_ring(c, 1) if n in index] for c, i in index.items()}
    keep = [i for i, ns in neighbours.items() if ns]
    if len(keep) < 3:
        return pd.DataFrame(columns=["cell", "value", "z", "p", "class"])
    renumber = {old: new for new, old in enumerate(keep)}
    frame = frame.iloc[keep].reset_index(drop=True)
    w = libpysal.weights.W(
        {renumber[i]: [renumber[n] for n in neighbours[i] if n in renumber] or [] for i in keep},
        silence_warnings=True,
    )
    if np.ptp(frame["value"].to_numpy()) == 0:  # a flat field: Gi*'s variance is zero, nothing stands out
        return frame.assign(z=0.0, p=1.0, **{"class": "not_significant"})
    np.random.seed(seed)  # esda's permutations draw from numpy's global generator
    g = G_Local(frame["value"].to_numpy(), w, transform="B", star=True, permutations=permutations, seed=seed)
    frame["z"] = g.Zs
    frame["p"] = g.p_sim if permutations else g.p_norm
    frame["class"] = [classify(z, p) for z, p in zip(frame["z"], frame["p"], strict=True)]
    return frame
