"""Web push's JSON routes: the VAPID public key, and a browser's subscription made, listed and ended by the
signed-in person it belongs to (core.push)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from smartcity.core import push
from smartcity.core.auth import Identity, Require

router = APIRouter(prefix="/api/push", tags=["notifications"])
Self = Annotated[Identity, Depends(Require("account.self", audited=True))]


@router.get("/key")
def key(request: Request) -> dict:
    """The VAPID public key a page subscribes with (`applicationServerKey`)."""
    return {"public_key": push.public_key(request.app.state.settings)}


@router.post("/subscriptions", status_code=201)
def subscribe(request: Request, identity: Self, subscription: Annotated[Any, Body()]) -> dict:
    """Keep this browser's PushSubscription (the JSON `PushSubscription.toJSON()` gives) for the caller's
    account; 422 `invalid_subscription` with every problem if it cannot be used."""
    settings = request.app.state.settings
    device = request.headers.get("user-agent", "")
    with request.app.state.db.session() as s:
        sub = push.subscribe(s, identity, subscription, device, allow_http=settings.push_http_endpoints)
        return {"id": sub.id, "device": sub.device, "created_at": sub.created_at.isoformat()}


@router.get("/subscriptions")
def devices(request: Request, identity: Self) -> list[dict]:
    """The caller's subscribed browsers (audited: where a person's notifications go is personal data)."""
    with request.app.state.db.session() as s:
        return push.devices(s, identity)


@router.delete("/subscriptions", status_code=204)
def unsubscribe(request: Request, identity: Self, subscription: Annotated[dict, Body()]) -> Response:
    """End this browser's subscription: the body names its `endpoint` (404 `no_subscription` if the caller's
    account has none there)."""
    with request.app.state.db.session() as s:
        push.unsubscribe(s, identity, subscription.get("endpoint", ""))
    return Response(status_code=204)
