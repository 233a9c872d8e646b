"""Database rows to API shapes; what a nurse may see of a number is decided here."""

from __future__ import annotations

from app.api import schemas
from app.crypto import PhoneVault
from app.models import AttentionFlag, AuditEvent, Call, CareTeamMessage, Pair, Participant, StaffUser
from app.services import labels
from ivr.phone import masked


def participant(p: Participant, vault: PhoneVault, *, full_number: bool) -> schemas.ParticipantOut:
    phone = vault.decrypt(p.phone_ciphertext) if p.phone_ciphertext else None
    return schemas.ParticipantOut(
        id=p.id,
        name=p.name,
        phone=(phone if full_number else masked(phone)) if phone else None,
        timezone=p.timezone,
        quiet_hours=p.quiet_hours,
        language=p.language,
        status="withdrawn" if p.status == "withdrawn" else "active",
        pair_id=p.active_pair_id,
        created_at=p.created_at,
        withdrawn_at=p.withdrawn_at,
    )


def pair(p: Pair, calls_this_period: int) -> schemas.PairOut:
    return schemas.PairOut(
        id=p.id,
        participant_ids=[p.participant_a_id, p.participant_b_id],
        started_at=p.started_at,
        ended_at=p.ended_at,
        last_contact_at=p.last_contact_at,
        calls_this_period=calls_this_period,
        notes=p.notes,
    )


def call(c: Call) -> schemas.CallOut:
    return schemas.CallOut(
        id=c.id,
        twilio_call_sid=c.twilio_call_sid,
        pair_id=c.pair_id,
        kind="reminder" if c.kind == "reminder" else "outreach" if c.kind == "outreach" else "peer",
        initiator_id=c.initiator_id,
        staff_initiator=c.staff_initiator,
        callee_id=c.callee_id,
        started_at=c.started_at,
        accepted_at=c.accepted_at,
        ended_at=c.ended_at,
        duration_seconds=c.duration_seconds,
        outcome=c.outcome,
        is_contact=c.outcome == "contact",
        notice_version=c.notice_version,
        label=labels.call_label(c),
    )


def message(m: CareTeamMessage, base_path: str = "/api/v1") -> schemas.MessageOut:
    return schemas.MessageOut(
        id=m.id,
        participant_id=m.participant_id,
        call_id=m.call_id,
        received_at=m.received_at,
        duration_seconds=m.duration_seconds,
        recording_sid=m.recording_sid,
        recording_url=f"{base_path}/messages/{m.id}/recording",
        handled_at=m.handled_at,
        handled_by=m.handled_by,
        handled_note=m.handled_note,
    )


def attention(f: AttentionFlag, p: Pair | None) -> schemas.AttentionOut:
    return schemas.AttentionOut(
        id=f.id,
        pair_id=f.pair_id,
        participant_ids=[p.participant_a_id, p.participant_b_id] if p else [],
        reason=f.reason,
        raised_at=f.raised_at,
        last_contact_at=p.last_contact_at if p else None,
        cleared_at=f.cleared_at,
        cleared_by=f.cleared_by,
        note=f.note,
    )


def audit_event(e: AuditEvent) -> schemas.AuditOut:
    return schemas.AuditOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        action=e.action,
        target=e.target,
        client_ip=e.client_ip,
        count=e.count or 1,
    )


def user(u: StaffUser) -> schemas.UserOut:
    role = u.role if u.role in ("nurse", "staff", "admin") else "nurse"
    return schemas.UserOut(
        id=u.id, email=u.email, role=role, created_at=u.created_at, disabled_at=u.disabled_at
    )
