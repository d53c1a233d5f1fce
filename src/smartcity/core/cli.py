"""What every command of `smartcity` (the core's and the modules') stands on: the store and the city profile
of the settings, reading a file, and platform errors shown as a message with exit status 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from smartcity.core.errors import SmartCityError
from smartcity.settings import get_settings

if TYPE_CHECKING:
    from smartcity.core.city import CityProfile
    from smartcity.core.db import Database

P = ParamSpec("P")
R = TypeVar("R")


def database() -> Database:
    """The store of the settings (SMARTCITY_DATABASE_URL)."""
    from smartcity.core.db import Database

    return Database(get_settings().database_url)


def city_profile() -> CityProfile:
    """The city profile of the settings (SMARTCITY_CITY)."""
    from smartcity.core.city import load_profile

    return load_profile(get_settings().city)


def read_file(path: Path) -> bytes:
    """The bytes of `path`, or a clear command error when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None


def command_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn platform errors into a clear message and exit status 2, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SmartCityError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            for detail in exc.details or []:
                click.echo(
                    f"  - {json.dumps(detail, ensure_ascii=False) if isinstance(detail, dict) else detail}",
                    err=True,
                )
            sys.exit(2)

    return wrapper
