"""The JSON API of Community Mapping, under /api/reports (thin: every rule is in service.py)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/reports", tags=["reports"])
