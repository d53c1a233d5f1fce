"""A module made only of a folder, to prove the module contract: a route, a role, a permission, a setting,
a job, an event handler, an error format, a CLI command, a navigation link and a dataset — and no change to
core."""

from __future__ import annotations

from dataclasses import dataclass

import click
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from smartcity.core.auth import Identity, Require
from smartcity.core.jobs import Job
from smartcity.core.module import Dataset, Module, NavLink, Role
from smartcity.settings import setting

PREFIX = "/example"


@dataclass(frozen=True)
class ExampleSettings:
    greeting: str = setting("hello", "What the example module says to a gardener.")
    plots: int = setting(3, "How many plots the example city has.")


def _router() -> APIRouter:
    # Made when the app includes it: by then the module's permission is declared.
    router = APIRouter()

    @router.get(f"{PREFIX}/greeting")
    def greeting(request: Request, who: Identity = Depends(Require("example.garden"))) -> dict:
        own = request.app.state.context.settings_of(ExampleSettings)
        return {"greeting": f"{own.greeting}, {who.username}", "plots": own.plots}

    @router.get(f"{PREFIX}/plots/{{number}}")
    def plot(number: int) -> dict:
        from smartcity.core.errors import NotFound

        raise NotFound(f"no plot {number}")

    return router


def _error(request: Request, exc) -> PlainTextResponse:
    return PlainTextResponse(f"example says no: {exc.code}\n", status_code=exc.status)


def _tick(db, settings) -> int:
    """Writes one audit entry carrying the module's own greeting setting."""
    from smartcity.core import audit
    from smartcity.core.auth import Identity
    from smartcity.core.context import context_of

    own = context_of(db).settings_of(ExampleSettings)
    with db.session() as s:
        audit.record(s, Identity(username="example-job"), "tick", "example", None, {"greeting": own.greeting})
    return 1


def _planted(context, event) -> None:
    """Hears `example.planted` events: notes each one in the audit log, with the module's greeting."""
    from smartcity.core import audit
    from smartcity.core.auth import Identity

    own = context.settings_of(ExampleSettings)
    with context.db.session() as s:
        audit.record(
            s,
            Identity(username="example-handler"),
            "heard",
            "example",
            str(event.data.get("plot")),
            {"greeting": own.greeting},
        )


def _rows(session):
    for n in range(1, 4):
        yield {"plot": n}


@click.group("example")
def _cli() -> None:
    """The example module."""


@_cli.command("hello")
def _hello() -> None:
    """Print the greeting setting."""
    from smartcity.core.cli import database
    from smartcity.core.context import context_of

    click.echo(context_of(database()).settings_of(ExampleSettings).greeting)


module = Module(
    name="example",
    routers=(_router,),
    roles=(Role("gardener", "Gardener: tends the example plots"),),
    permissions={"example.garden": ("gardener",)},
    nav=(NavLink("Garden", f"{PREFIX}/greeting", "example.garden"),),
    settings=ExampleSettings,
    jobs=(Job("example.tick", 60, _tick),),
    handlers=(("example.", _planted),),
    error_formats={PREFIX: _error},
    cli=_cli,
    datasets=(Dataset("plots", "Example plots", _rows),),
)
