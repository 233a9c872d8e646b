"""Reading what a form posted, and saying what is wrong with it in words for the person filling it in."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request

from app.api.pagination import MAX_ID
from app.services.errors import ServiceError
from app.services.zones import is_place
from ivr.quiet_hours import known_zones
from ivr.vocab import SUPPORTED_LANGUAGES

COMMON_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
]


class BadField(Exception):
    """A posted field or a query parameter no page could take (a NUL character, which
    PostgreSQL cannot store or even compare): answered with a 422 page naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def refuse_nul(fields: Mapping[str, str]) -> None:
    for name, value in fields.items():
        if "\x00" in value or "\x00" in name:
            raise BadField(name.replace("\x00", "") or "field", "must not contain NUL characters")


async def posted_form(request: Request) -> dict[str, str]:
    """The form's text fields (uploads are never expected, so they are dropped)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    refuse_nul(fields)
    return fields


def query_without_nul(request: Request) -> None:
    """Every console page refuses a NUL in its query string before anything reads it."""
    refuse_nul(request.query_params)


def form_id(value: str | None) -> int | None:
    """A record id chosen in a form, or None when it is not one (empty, not a number, out of range)."""
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if 1 <= number <= MAX_ID else None


def safe_next(next_path: str | None) -> str:
    """Where to go after signing in: only ever a console page, never another site, and nothing
    that cannot stand in a Location header (a control character there would fail the answer)."""
    if (
        next_path
        and next_path.startswith("/console/")
        and not next_path.startswith("//")
        and len(next_path) <= 2000
        and all(32 < ord(c) < 127 for c in next_path)
    ):
        return next_path
    return "/console/"


def zones(current: str | None = None) -> list[str]:
    """Time-zone choices: the programme's usual zones first, then every other place (never a
    fixed offset or an old alias: services/zones.py). A participant's `current` zone from before
    that rule is offered first, so an edit never silently moves them to another zone."""
    rest = sorted(z for z in known_zones() if is_place(z) and not z.startswith(("posix/", "right/")))
    choices = [*COMMON_ZONES, "UTC", *[z for z in rest if z not in COMMON_ZONES and z != "UTC"]]
    return [current, *choices] if current and current not in choices else choices


def field_errors(*problems: ServiceError) -> dict[str, str]:
    """One plain message per field; where a field has several problems, the first one is shown."""
    errors: dict[str, str] = {}
    for exc in reversed(problems):
        errors.update(_field_error(exc))
    return errors


def _field_error(exc: ServiceError) -> dict[str, str]:
    field, _, message = str(exc).partition(": ")
    if not message:
        return {"form": str(exc)}
    plain = {
        "phone": f"This phone number does not look right ({message}). "
        "Type it with the area code, e.g. (617) 555-0101.",
        "timezone": "Choose a time zone from the list.",
        "language": "Choose a language from the list: "
        + ", ".join(SUPPORTED_LANGUAGES)
        + " (English, Spanish).",
        "quiet_hours": "Write quiet hours like 21:00-09:00 (from - to, 24-hour clock), or leave empty.",
    }
    if field == "name":
        plain["name"] = "Enter a name or alias." if "empty" in message else message.capitalize() + "."
    if field == "timezone" and "use the place" in message:
        # a fixed offset or an old alias: say so, and which place to choose instead
        plain["timezone"] = f"Time zone {message}."
    return {
        field: plain.get(field, message)
        if "already enrolled" not in message
        else "This number is already enrolled."
    }


def account_error(exc: ServiceError) -> dict[str, str]:
    """A staff-account problem ("email: …") as the message under that field."""
    field, _, message = str(exc).partition(": ")
    return {field: message.capitalize() + "."}
