"""Path and query parameters every resource shares, so they are checked the same way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import AfterValidator

from app.api.errors import field_error
from app.api.pagination import MAX_ID, Page, page_params

Paging = Annotated[Page, Depends(page_params)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _in_utc(value: datetime | None) -> datetime | None:
    """The moment in UTC, as the database compares it; a time given without an offset is read
    as UTC, the zone the database keeps. 0001-01-01T00:00:00+14:00 is a valid
    date-time that falls before year 1 once in UTC: a 422 naming the parameter, not a 500."""
    if value is None:
        return None
    try:
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall within the years 1 to 9999 once converted to UTC") from None


# `?since=` / `?until=`: a date-time (no offset means UTC) within what the databases can hold
QueryTime = Annotated[datetime | None, AfterValidator(_in_utc), Query()]


def query_without_nul(request: Request) -> None:
    """Every API route refuses a NUL in its query string before anything reads it: PostgreSQL
    cannot compare text holding one (`?search=%00` was a 500), and no parameter needs it."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise field_error("query", name.replace("\x00", ""), "must not contain NUL characters")
