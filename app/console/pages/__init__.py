"""Every console page, one module per area; `router` serves them all under /console."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.console.forms import query_without_nul
from app.console.pages import (
    account,
    attention,
    audit,
    engagement,
    messages,
    notices,
    outreach,
    pairs,
    participants,
    sign_in,
    staff,
    today,
)

# a NUL in any query string is refused before a page reads it (PostgreSQL cannot compare it)
router = APIRouter(dependencies=[Depends(query_without_nul)])
for area in (
    sign_in,
    today,
    pairs,
    engagement,
    participants,
    messages,
    attention,
    staff,
    audit,
    account,
    notices,
    outreach,
):
    router.include_router(area.router)
