"""The audit trail: who viewed or changed what, and when. Rows are only ever added."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.models import AuditEvent

SYSTEM = "system"


def record(
    db: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    client_ip: str | None = None,
    at: datetime,
) -> None:
    db.add(AuditEvent(at=at, actor=actor, action=action, target=target, client_ip=client_ip))
