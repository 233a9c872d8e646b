"""422s built by hand keep FastAPI's own shape: a list of errors, each naming where and which field."""

from __future__ import annotations

from fastapi import HTTPException


def field_error(location: str, field: str, message: str) -> HTTPException:
    return HTTPException(
        status_code=422, detail=[{"loc": [location, field], "msg": message, "type": "value_error"}]
    )
