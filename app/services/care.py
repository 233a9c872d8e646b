"""What nurses and staff do with the inbox and the attention list, shared by API and console."""

from __future__ import annotations

from datetime import datetime

from app.models import AttentionFlag, CareTeamMessage


def mark_handled(message: CareTeamMessage, *, by: str, now: datetime) -> bool:
    """Record who handled a message; False when someone already had (the first one stays)."""
    if message.handled_at is not None:
        return False
    message.handled_at, message.handled_by = now, by
    return True


def clear_attention(flag: AttentionFlag, *, by: str, note: str, now: datetime) -> bool:
    """Staff reached out: the flag leaves the list and stays in the pair's history."""
    if flag.cleared_at is not None:
        return False
    flag.cleared_at, flag.cleared_by, flag.note = now, by, note[:2000] or None
    return True
