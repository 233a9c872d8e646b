"""The audit trail: who viewed or changed what, and when. Rows are only ever added.

One vocabulary for the API, the console and the command line: the same read or change
is recorded under the same action wherever it was made.

Failed sign-ins are the one thing an outsider can make happen as often as they like, so they
are coalesced: one row per client address, account, reason and minute, whose `count` grows
with each repeat. Every failure is still counted, and a locked-out address hammering the
sign-in form writes a few rows a minute instead of thousands. The database lets exactly this
update through and refuses every other (migrations/versions/0006_staff_sessions_and_audit.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import AuditEvent

SYSTEM = "system"
CLI_ADDRESS = "cli"  # the client_ip of what operators do at the command line, on the machine itself


class Action(StrEnum):
    SIGN_IN = "auth.sign_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    SIGN_OUT = "auth.sign_out"
    PASSWORD_CHANGE = "auth.password_change"
    SIGN_OUT_EVERYWHERE = "auth.sign_out_everywhere"
    TODAY_READ = "today.read"
    PARTICIPANTS_READ = "participants.read"
    PARTICIPANT_READ = "participant.read"
    PARTICIPANT_CREATE = "participant.create"
    PARTICIPANT_UPDATE = "participant.update"
    PARTICIPANT_DELETE = "participant.delete"
    PAIRS_READ = "pairs.read"
    PAIR_READ = "pair.read"
    PAIR_CREATE = "pair.create"
    PAIR_END = "pair.end"
    PAIR_NOTES = "pair.notes"
    STATS_READ = "stats.read"
    CALLS_READ = "calls.read"
    EXPORT_CALLS = "export.calls"
    ATTENTION_READ = "attention.read"
    ATTENTION_CLEAR = "attention.clear"
    MESSAGES_READ = "messages.read"
    MESSAGE_LISTEN = "message.listen"
    MESSAGE_HANDLE = "message.handle"
    AUDIT_READ = "audit.read"
    USERS_READ = "users.read"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_PASSWORD_RESET = "user.password_reset"
    USER_SIGN_OUT = "user.sign_out_everywhere"
    NOTICES_READ = "notices.read"
    NOTICE_CREATE = "notice.create"
    NOTICE_ACTIVATE = "notice.activate"
    PROMPT_AUDIO_LINK = "prompt_audio.link"
    PROMPT_AUDIO_UNLINK = "prompt_audio.unlink"
    ENGAGEMENT_READ = "engagement.read"
    EXPORT_RESEARCH = "export.research"
    ME_READ = "me.read"
    ME_PHONE = "me.phone"
    ME_DIGEST = "me.digest"
    OUTREACH_CALL = "outreach.call"
    OUTREACH_QUIET_OVERRIDE = "outreach.quiet_hours_override"


def record(
    db: Session,
    *,
    actor: str,
    action: Action,
    target: str | None = None,
    client_ip: str | None = None,
    at: datetime,
) -> None:
    db.add(AuditEvent(at=at, actor=actor, action=str(action), target=target, client_ip=client_ip, count=1))


class FailureReason(StrEnum):
    """Why a sign-in was refused, as the coalesced audit row says it (a fixed vocabulary, so
    the repeats of one attack fall into one row)."""

    WRONG_PASSWORD = "wrong email or password"
    ACCOUNT_LOCKED = "locked: too many wrong passwords for this account"
    ADDRESS_LOCKED = "locked: too many wrong passwords from this address"


# distinct accounts one address may fill rows with in a minute before the rest share one row
ACCOUNTS_PER_MINUTE = 10
OTHER_ACCOUNTS = "(other accounts)"


def failed_sign_in(db: Session, *, email: str, reason: FailureReason, client_ip: str, at: datetime) -> None:
    """Count one failed sign-in in this minute's row for (address, account, reason), adding the
    row if it is the first. Past ACCOUNTS_PER_MINUTE accounts from one address in a minute, the
    rest are counted under OTHER_ACCOUNTS: spraying many emails cannot flood the table either.

    The caller serialises sign-ins from one address (staff.serialise_sign_ins), so two failures
    never both add the minute's row.
    """
    minute = at.replace(second=0, microsecond=0)
    this_minute = (
        AuditEvent.action == str(Action.SIGN_IN_FAILED),
        AuditEvent.client_ip == client_ip,
        AuditEvent.at >= minute,
    )
    actor = email
    row_id = _row_of(db, this_minute, actor, reason)
    if row_id is None:
        seen = db.scalar(select(AuditEvent.id).where(*this_minute, AuditEvent.actor == actor).limit(1))
        accounts = db.scalar(select(func.count(func.distinct(AuditEvent.actor))).where(*this_minute)) or 0
        # an account already named this minute keeps its name (its lockout is news); a new one
        # past the limit joins the shared row
        if seen is None and accounts >= ACCOUNTS_PER_MINUTE:
            actor = OTHER_ACCOUNTS
            row_id = _row_of(db, this_minute, actor, reason)
    if row_id is None:
        record(db, actor=actor, action=Action.SIGN_IN_FAILED, target=str(reason), client_ip=client_ip, at=at)
        return
    db.execute(
        update(AuditEvent)
        .where(AuditEvent.id == row_id)
        .values(count=AuditEvent.count + 1)
        .execution_options(synchronize_session=False)
    )


def _row_of(db: Session, this_minute: tuple[object, ...], actor: str, reason: FailureReason) -> int | None:
    return db.scalar(
        select(AuditEvent.id)
        .where(*this_minute, AuditEvent.actor == actor, AuditEvent.target == str(reason))  # type: ignore[arg-type]
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
