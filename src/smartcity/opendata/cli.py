"""`smartcity opendata …`: load files into the catalogue, refresh the platform's datasets."""

from __future__ import annotations

import click


@click.group("opendata")
def group() -> None:
    """Open Data Plaza: the catalogue of the city's datasets."""
