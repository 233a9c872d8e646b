"""The treatment notice, for admins: its versions, a new draft, activation; and prompt audio.

A version's rows keep who made and who activated it and when, which is the notice's own
audit trail (audit Actions for these changes are the lead's to add in app.services.audit).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import AdminActor
from app.db import SessionDep
from app.models import PromptAudio, TreatmentNotice
from app.services import notices
from app.services.audit import Action

router = APIRouter(tags=["notices"])


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=notices.MAX_VERSION)
    # {language: text}; a draft may lack a language, activation may not
    texts: dict[str, str] = Field(default_factory=dict)


class NoticeOut(BaseModel):
    version: str
    texts: dict[str, str]
    created_at: datetime
    created_by: str
    activated_at: datetime | None
    activated_by: str | None
    active: bool
    missing_languages: list[str]
    too_long: list[str]


class PeriodOut(BaseModel):
    version: str
    since: datetime
    until: datetime | None
    activated_by: str | None


class NoticesOut(BaseModel):
    active: str | None
    items: list[NoticeOut]
    history: list[PeriodOut]


class AudioIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=40)
    language: str = Field(min_length=1, max_length=8)
    url: str = Field(min_length=1, max_length=notices.MAX_URL)


class AudioOut(BaseModel):
    prompt: str
    language: str
    url: str
    updated_at: datetime
    updated_by: str


def _out(row: TreatmentNotice, active: TreatmentNotice | None) -> NoticeOut:
    return NoticeOut(
        version=row.version,
        texts=dict(row.texts),
        created_at=row.created_at,
        created_by=row.created_by,
        activated_at=row.activated_at,
        activated_by=row.activated_by,
        active=active is not None and active.id == row.id,
        missing_languages=notices.missing_languages(row.texts),
        too_long=notices.words_over(row.texts),
    )


def _audio_out(row: PromptAudio) -> AudioOut:
    return AudioOut(
        prompt=row.prompt,
        language=row.language,
        url=row.url,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


@router.get("/notices", response_model=NoticesOut)
def list_notices(actor: AdminActor, db: SessionDep) -> NoticesOut:
    actor.audit(db, Action.NOTICES_READ, "notices")
    active = notices.active(db)
    return NoticesOut(
        active=active.version if active else None,
        items=[_out(row, active) for row in notices.versions(db)],
        history=[PeriodOut(**vars(p)) for p in notices.history(db)],
    )


@router.post("/notices", status_code=201, response_model=NoticeOut)
def create_notice(body: NoticeIn, actor: AdminActor, db: SessionDep) -> NoticeOut:
    row = notices.create_draft(
        db, version=body.version, texts=body.texts, actor=actor.email, now=actor.ctx.clock()
    )
    actor.audit(db, Action.NOTICE_CREATE, f"notice:{row.version}")
    return _out(row, notices.active(db))


@router.post("/notices/{version}/activate", response_model=NoticeOut)
def activate_notice(version: str, actor: AdminActor, db: SessionDep) -> NoticeOut:
    row = notices.activate(db, version, actor=actor.email, now=actor.ctx.clock())
    actor.audit(db, Action.NOTICE_ACTIVATE, f"notice:{row.version}")
    return _out(row, row)


@router.get("/prompt-audio", response_model=list[AudioOut])
def list_audio(actor: AdminActor, db: SessionDep) -> list[AudioOut]:
    actor.audit(db, Action.NOTICES_READ, "prompt audio")
    return [_audio_out(row) for row in notices.audio_rows(db)]


@router.put("/prompt-audio", response_model=AudioOut)
def link_audio(body: AudioIn, actor: AdminActor, db: SessionDep) -> AudioOut:
    row = notices.set_audio(
        db, prompt=body.prompt, language=body.language, url=body.url, actor=actor.email, now=actor.ctx.clock()
    )
    actor.audit(db, Action.PROMPT_AUDIO_LINK, f"prompt:{body.prompt}:{body.language}")
    return _audio_out(row)


@router.delete("/prompt-audio/{prompt}/{language}", status_code=204)
def unlink_audio(prompt: str, language: str, actor: AdminActor, db: SessionDep) -> None:
    notices.remove_audio(db, prompt=prompt, language=language)
    actor.audit(db, Action.PROMPT_AUDIO_UNLINK, f"prompt:{prompt[:40]}:{language[:8]}")
