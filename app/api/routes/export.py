"""CSV exports for evaluation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.api.deps import StaffActor
from app.db import SessionDep
from app.services import export
from app.services.audit import Action

router = APIRouter(tags=["export"])


@router.get("/export/calls.csv", response_class=StreamingResponse)
def export_calls(request: Request, actor: StaffActor, db: SessionDep) -> StreamingResponse:
    """Every call as CSV, for evaluation: participant ids only, no names, no numbers. Streams."""
    actor.audit(db, Action.EXPORT_CALLS, "calls.csv")
    # The rows are read while the response is sent, after this request's session has been
    # committed and closed: the stream opens sessions of its own, never `db`.
    return StreamingResponse(
        export.calls_csv(request.app.state.sessionmaker),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="peerline-calls.csv"'},
    )
