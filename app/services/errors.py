from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ServiceError(Exception):
    """A request that cannot be carried out, with a message fit for the person who asked."""

    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Invalid(ServiceError):
    status_code = 422


def found(row: T | None, what: str) -> T:
    """The row a look-up by id found, or NotFound naming what was asked for ("pair 7 does not exist")."""
    if row is None:
        raise NotFound(f"{what} does not exist")
    return row
