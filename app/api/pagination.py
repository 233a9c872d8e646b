"""Keyset pagination: `?limit=` and an opaque `?cursor=`; newest first, stable under inserts."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Query

from app.api import schemas
from app.services.queries import Found

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# ids are 32-bit on both databases; a larger one names nothing, and SQLite cannot even bind it
MAX_ID = 2**31 - 1
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """What a list was asked for: `?limit=` rows after `?cursor=`."""

    limit: int
    cursor: str | None

    def after(self, shape: tuple[type, ...] = (int,)) -> tuple[Any, ...] | None:
        """The last sort key of the previous page (see `after` below), None for the first page."""
        return after(self.cursor, shape)


def encode_cursor(*key: Any) -> str:
    parts = [k.isoformat() if isinstance(k, datetime) else k for k in key]
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> tuple[Any, ...]:
    """The sort key a cursor stands for; anything this API could not have given out is a 422
    naming `cursor`, an id outside 1..MAX_ID included (a forged huge one would fail in the database)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(shape):
            raise ValueError
        key: list[Any] = []
        for value, kind in zip(raw, shape, strict=True):
            if kind is datetime:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError
                key.append(parsed)
            elif kind is int and _is_id(value):
                key.append(value)
            else:
                raise ValueError
        return tuple(key)
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError):
        raise HTTPException(
            status_code=422,
            detail=[
                {"loc": ["query", "cursor"], "msg": "not a cursor this API gave out", "type": "value_error"}
            ],
        ) from None


def _is_id(value: object) -> bool:
    # a bool is no id, though Python counts it an int
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


# `?cursor=` as the API's lists and the console's pages both take it
Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor from the previous page")]


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    return Page(limit, cursor)


def after(cursor: str | None, shape: tuple[type, ...] = (int,)) -> tuple[Any, ...] | None:
    """The sort key a `?cursor=` stands for, or None for the first page."""
    return decode_cursor(cursor, shape) if cursor else None


def cursor_after(next_key: tuple[Any, ...] | None) -> str | None:
    """The `next_cursor` to hand out, or None on the last page."""
    return encode_cursor(*next_key) if next_key else None


def page_out(found: Found[Any], items: list[T]) -> schemas.PageOut[T]:
    """A list's answer: this page's items, and the cursor to the next page (None on the last)."""
    return schemas.PageOut(items=items, next_cursor=cursor_after(found.next_key))
