"""The treatment notice, for admins: every version, which one was active when, a new
draft in every language, and activation (refused while a language has no text)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.console.deps import Admin, CheckedForm, ConsoleActor
from app.console.forms import field_errors
from app.console.render import go, page
from app.db import SessionDep
from app.services import notices
from app.services.audit import Action
from app.services.errors import ServiceError
from ivr.vocab import Language

router = APIRouter(prefix="/console", include_in_schema=False)
LANGUAGE_NAMES = {Language.EN: "English", Language.ES: "Spanish"}


def _notices_page(
    request: Request,
    who: ConsoleActor,
    db: Session,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        who,
        "notices.html",
        status_code=status_code,
        versions=notices.versions(db),
        current=notices.active(db),
        history=notices.history(db),
        languages=[(lang.value, LANGUAGE_NAMES.get(lang, lang.value)) for lang in Language],
        missing=notices.missing_languages,
        values=values or {},
        errors=errors or {},
    )


@router.get("/notices")
def notices_page(request: Request, who: Admin, db: SessionDep) -> Response:
    return _notices_page(request, who, db)


@router.post("/notices")
def create_notice(request: Request, who: Admin, form: CheckedForm, db: SessionDep) -> Response:
    texts = {lang.value: form.get(f"text_{lang.value}", "") for lang in Language}
    try:
        row = notices.create_draft(
            db, version=form.get("version", ""), texts=texts, actor=who.email, now=who.ctx.clock()
        )
        who.audit(db, Action.NOTICE_CREATE, f"notice:{row.version}")
    except ServiceError as exc:
        db.rollback()
        return _notices_page(request, who, db, values=form, errors=field_errors(exc), status_code=400)
    return go(request, who, "/console/notices")


@router.post("/notices/{version}/activate")
def activate_notice(
    request: Request, who: Admin, form: CheckedForm, db: SessionDep, version: str
) -> Response:
    try:
        row = notices.activate(db, version, actor=who.email, now=who.ctx.clock())
        who.audit(db, Action.NOTICE_ACTIVATE, f"notice:{row.version}")
    except ServiceError as exc:
        db.rollback()
        return _notices_page(request, who, db, errors={"activate": str(exc)}, status_code=400)
    return go(request, who, "/console/notices")
