"""Pages of votes, in Korean and English, for the phone."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
