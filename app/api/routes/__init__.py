"""/api/v1: thin routes over the services, one module per resource.

Every read of personal data and every change is audited (app.services.audit.Action); the
request's session commits when a handler returns, so handlers never commit themselves.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.params import query_without_nul
from app.api.routes import (
    attention,
    audit,
    auth,
    calls,
    engagement,
    export,
    me,
    messages,
    notices,
    pairs,
    participants,
    stats,
    users,
)

router = APIRouter(prefix="/api/v1", dependencies=[Depends(query_without_nul)])
for _resource in (
    auth,
    participants,
    pairs,
    stats,
    engagement,
    calls,
    export,
    attention,
    messages,
    audit,
    users,
    notices,
    me,
):
    router.include_router(_resource.router)

__all__ = ["router"]
