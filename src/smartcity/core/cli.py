"""What every command of `smartcity` (the core's and the modules') stands on: the store and the city profile
of the settings, reading a file, and platform errors shown as a message with exit status 2."""

from __future__ import annotations

import errno
import json
import socket
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from smartcity.core.errors import SmartCityError
from smartcity.settings import Settings, get_settings, variable

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


def listening_ports(settings: Settings) -> list[tuple[str, int]]:
    """(variable, port) for every port the serving process opens: the core's and those modules declare with
    `setting(..., listens=True)`; a port of 0 is off."""
    from dataclasses import fields

    from smartcity.core.module import declared

    groups: list[tuple[str, type, object]] = [("SMARTCITY_", type(settings), settings)]
    groups += [(m.env_prefix, m.settings, settings.of(m.settings, m.env_prefix)) for m in declared() if m.settings]
    return [
        (variable(f, prefix), getattr(values, f.name))
        for prefix, cls, values in groups
        for f in fields(cls)
        if f.metadata.get("listens") and getattr(values, f.name)
    ]


def check_ports(host: str, ports: list[tuple[str, int]]) -> None:
    """Stop with one line naming the setting to change when a port is taken, before anything starts: the
    server's own bind error names neither the setting nor, for a module's listener, stops the start."""
    for name, port in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As the server itself binds: a port left in TIME_WAIT by a previous run is free to it.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
                raise click.ClickException(
                    f"port {port} on {host} {why}: stop what holds it, or set {name} to another port"
                ) from None
