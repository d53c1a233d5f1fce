"""Live platform datasets: what modules declare (`Module.datasets`) kept current in the catalogue."""

from __future__ import annotations


def refresh_all(db) -> int:
    return 0


def on_event(context, event) -> None:
    return None
