"""What callers hear that staff manage: the treatment notice, versioned, and recorded audio.

The notice is a draft until an admin activates it, and only a version with its text in
every supported language can be activated; a version is activated once, so the rows
themselves say which version was active when. The call path reads what is in force from
a per-process cache with a short time to live: a webhook never waits on more than the
first read after it expires, and an activation here clears the cache at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

import ivr.flow as flow
from app.models import PromptAudio, TreatmentNotice
from app.services.errors import Conflict, Invalid, NotFound
from ivr.prompts import MAX_WORDS, Prompt
from ivr.vocab import SUPPORTED_LANGUAGES, Language, UnsupportedLanguage, language_of

CACHE_SECONDS = 30.0
MAX_VERSION = 16
MAX_NOTICE_CHARS = 600
MAX_URL = 512


# ---------------------------------------------------------------- what the call path reads


@dataclass(frozen=True)
class InForce:
    notice: flow.Notice
    audio: Mapping[tuple[Prompt, Language], str]


_lock = threading.Lock()
_cached: tuple[float, InForce] | None = None


def in_force(db: Session) -> InForce:
    """The active notice (the built-in one when none is) and the prompt audio, cached."""
    global _cached
    cached = _cached
    if cached is not None and time.monotonic() < cached[0]:
        return cached[1]
    fresh = InForce(_active_notice(db), _audio(db))
    with _lock:
        _cached = (time.monotonic() + CACHE_SECONDS, fresh)
    return fresh


def forget() -> None:
    """Clear the cache: after a change here, and between tests."""
    global _cached
    with _lock:
        _cached = None


def _active_notice(db: Session) -> flow.Notice:
    row = db.scalars(
        select(TreatmentNotice)
        .where(TreatmentNotice.activated_at.is_not(None))
        .order_by(TreatmentNotice.activated_at.desc(), TreatmentNotice.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return flow.BUILT_IN_NOTICE
    return flow.Notice(
        row.version, {Language(k): v for k, v in row.texts.items() if k in SUPPORTED_LANGUAGES}
    )


def _audio(db: Session) -> dict[tuple[Prompt, Language], str]:
    found: dict[tuple[Prompt, Language], str] = {}
    for row in db.scalars(select(PromptAudio)):
        try:
            found[(Prompt(row.prompt), Language(row.language))] = row.url
        except ValueError:
            continue  # a prompt renamed or a language dropped since: its text is said instead
    return found


# ---------------------------------------------------------------- the notice, managed


def versions(db: Session) -> list[TreatmentNotice]:
    """Every version, newest first."""
    return list(
        db.scalars(
            select(TreatmentNotice).order_by(TreatmentNotice.created_at.desc(), TreatmentNotice.id.desc())
        )
    )


def active(db: Session) -> TreatmentNotice | None:
    return db.scalars(
        select(TreatmentNotice)
        .where(TreatmentNotice.activated_at.is_not(None))
        .order_by(TreatmentNotice.activated_at.desc(), TreatmentNotice.id.desc())
        .limit(1)
    ).first()


def missing_languages(texts: Mapping[str, str]) -> list[str]:
    return [code for code in SUPPORTED_LANGUAGES if not (texts.get(code) or "").strip()]


def create_draft(
    db: Session, *, version: str, texts: Mapping[str, str], actor: str, now: datetime
) -> TreatmentNotice:
    """A new version, not yet said on any call. Some languages may still be missing."""
    version = version.strip()
    if not version or len(version) > MAX_VERSION:
        raise Invalid(f"version: 1 to {MAX_VERSION} characters")
    clean: dict[str, str] = {}
    for code, words in texts.items():
        try:
            language = language_of(code)
        except UnsupportedLanguage as exc:
            raise Invalid(f"texts: {exc}") from None
        words = " ".join((words or "").split())
        if len(words) > MAX_NOTICE_CHARS:
            raise Invalid(f"texts.{language}: at most {MAX_NOTICE_CHARS} characters")
        if words:
            clean[language.value] = words
    if db.scalar(select(TreatmentNotice.id).where(TreatmentNotice.version == version)) is not None:
        raise Conflict(f"version: {version} already exists")
    row = TreatmentNotice(version=version, texts=clean, created_at=now, created_by=actor)
    db.add(row)
    db.flush()
    return row


def activate(db: Session, version: str, *, actor: str, now: datetime) -> TreatmentNotice:
    """Every call from now on says this version. Refused while a language has no text, and
    for a version that was active before (make a new version: the history stays exact)."""
    row = db.scalars(select(TreatmentNotice).where(TreatmentNotice.version == version)).first()
    if row is None:
        raise NotFound(f"notice version {version} does not exist")
    if row.activated_at is not None:
        raise Conflict(f"version {version} was already activated; create a new version instead")
    missing = missing_languages(row.texts)
    if missing:
        raise Invalid(
            f"texts: every language needs its text before activation; missing: {', '.join(missing)}"
        )
    row.activated_at, row.activated_by = now, actor
    db.flush()
    forget()
    return row


@dataclass(frozen=True)
class Period:
    """A version and when it was the one said on calls (`until` None: still is)."""

    version: str
    since: datetime
    until: datetime | None
    activated_by: str | None


def history(db: Session) -> list[Period]:
    """Which version was active when, newest first."""
    rows = list(
        db.scalars(
            select(TreatmentNotice)
            .where(TreatmentNotice.activated_at.is_not(None))
            .order_by(TreatmentNotice.activated_at.desc(), TreatmentNotice.id.desc())
        )
    )
    periods, until = [], None
    for row in rows:
        assert row.activated_at is not None
        periods.append(Period(row.version, row.activated_at, until, row.activated_by))
        until = row.activated_at
    return periods


def words_over(texts: Mapping[str, str]) -> list[str]:
    """Languages whose notice runs past the word limit every prompt keeps (a warning only:
    the notice's wording is the care team's to choose)."""
    return [code for code, words in texts.items() if len(words.split()) > MAX_WORDS]


# ---------------------------------------------------------------- recorded audio


def set_audio(db: Session, *, prompt: str, language: str, url: str, actor: str, now: datetime) -> PromptAudio:
    """Link recorded audio to a prompt in a language; the prompt's text stays as the fallback."""
    try:
        name = Prompt(prompt)
    except ValueError:
        raise Invalid(f"prompt: unknown prompt {prompt!r}") from None
    try:
        lang = language_of(language)
    except UnsupportedLanguage as exc:
        raise Invalid(f"language: {exc}") from None
    url = url.strip()
    if not url.startswith("https://") or len(url) > MAX_URL or any(ch.isspace() for ch in url):
        raise Invalid(f"url: an https:// address of at most {MAX_URL} characters")
    row = db.scalars(
        select(PromptAudio).where(PromptAudio.prompt == name.value, PromptAudio.language == lang.value)
    ).first()
    if row is None:
        row = PromptAudio(prompt=name.value, language=lang.value, url=url, updated_at=now, updated_by=actor)
        db.add(row)
    else:
        row.url, row.updated_at, row.updated_by = url, now, actor
    db.flush()
    forget()
    return row


def remove_audio(db: Session, *, prompt: str, language: str) -> None:
    row = db.scalars(
        select(PromptAudio).where(PromptAudio.prompt == prompt, PromptAudio.language == language)
    ).first()
    if row is None:
        raise NotFound(f"no audio for {prompt} in {language}")
    db.delete(row)
    db.flush()
    forget()


def audio_rows(db: Session) -> list[PromptAudio]:
    return list(db.scalars(select(PromptAudio).order_by(PromptAudio.prompt, PromptAudio.language)))
