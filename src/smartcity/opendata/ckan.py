"""CKAN's Action API over the catalogue: /api/3/action/{action} and /api/action/{action}."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


def render_error(request: Request, exc) -> JSONResponse:
    return JSONResponse({"success": False, "error": {"__type": "Internal Error", "message": str(exc)}}, 500)
