"""`smartcity participation …`: votes' hash chains and the residents register."""

from __future__ import annotations

import click


@click.group("participation")
def group() -> None:
    """Citizen participation: votes' chains, the residents register."""


def commands() -> list:
    return [group]
