"""What nurses and staff do with the inbox and the attention list, shared by API and console."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.models import AttentionFlag, CareTeamMessage
from app.services.errors import Invalid, found

NOTE_LENGTH = 2000


def get_message(db: Session, message_id: int) -> CareTeamMessage:
    return found(db.get(CareTeamMessage, message_id), f"message {message_id}")


def get_attention_flag(db: Session, flag_id: int) -> AttentionFlag:
    return found(db.get(AttentionFlag, flag_id), f"attention flag {flag_id}")


def _check_note(note: str) -> str | None:
    if len(note) > NOTE_LENGTH:
        raise Invalid(f"note: at most {NOTE_LENGTH} characters")
    return note.strip() or None


def mark_handled(message: CareTeamMessage, *, by: str, now: datetime, note: str = "") -> bool:
    """Record who handled a message, when, and what they did; False when someone already had
    (the first one stays). Nurses may do this: the inbox is their work list."""
    checked = _check_note(note)
    if message.handled_at is not None:
        return False
    message.handled_at, message.handled_by, message.handled_note = now, by, checked
    return True


def clear_attention(flag: AttentionFlag, *, by: str, note: str, now: datetime) -> bool:
    """A nurse or staff member reached out: the flag leaves the list and stays in the pair's
    history with who, when and the note."""
    checked = _check_note(note)
    if flag.cleared_at is not None:
        return False
    flag.cleared_at, flag.cleared_by, flag.note = now, by, checked
    return True
