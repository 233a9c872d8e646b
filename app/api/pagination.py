"""Keyset pagination: `?limit=` and an opaque `?cursor=`; newest first, stable under inserts."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import HTTPException, Query

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page:
    limit: int
    after: tuple[Any, ...] | None  # the last sort key of the previous page


def encode_cursor(*key: Any) -> str:
    parts = [k.isoformat() if isinstance(k, datetime) else k for k in key]
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> tuple[Any, ...]:
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
            elif kind is int and isinstance(value, int) and not isinstance(value, bool):
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


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor from the previous page")
    ] = None,
) -> tuple[int, str | None]:
    return limit, cursor


def after(cursor: str | None, shape: tuple[type, ...] = (int,)) -> tuple[Any, ...] | None:
    """The sort key a `?cursor=` stands for, or None for the first page."""
    return decode_cursor(cursor, shape) if cursor else None


def cursor_after(next_key: tuple[Any, ...] | None) -> str | None:
    """The `next_cursor` to hand out, or None on the last page."""
    return encode_cursor(*next_key) if next_key else None
