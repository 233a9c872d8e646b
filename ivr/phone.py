"""Phone numbers as patients type them and as Twilio reports them."""

from __future__ import annotations

import phonenumbers

# Twilio reports a withheld caller ID with one of these words instead of a number, or with
# its placeholder number +266696687.
WITHHELD = frozenset(
    {"", "anonymous", "restricted", "unknown", "private", "unavailable", "blocked", "+266696687", "266696687"}
)


def is_withheld(raw: str | None) -> bool:
    return (raw or "").strip().lower() in WITHHELD


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number that can be dialled."""


def normalise(raw: str | None, region: str = "US") -> str:
    """Return the number in E.164 (`+16175550101`) or raise InvalidPhoneNumber."""
    text = (raw or "").strip()
    if text.lower() in WITHHELD:
        raise InvalidPhoneNumber("no number given")
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber("not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def try_normalise(raw: str | None, region: str = "US") -> str | None:
    try:
        return normalise(raw, region)
    except InvalidPhoneNumber:
        return None


def masked(e164: str) -> str:
    """What a nurse sees: only the last two digits."""
    return "•••-•••-••" + e164[-2:]
