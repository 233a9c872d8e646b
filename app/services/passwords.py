"""What a staff password must be, after NIST SP 800-63B (5.1.1.2, memorized secrets).

Length is what makes a password strong, so the rules are few: at least 12 characters (one
rule for every role: admins are no more exposed to guessing than nurses, whose accounts read
the same personal data), at most 128 so that any passphrase fits, any printable character
including spaces and non-ASCII letters, and not a password that is known to be common. No
composition rules (one digit, one capital ...) and no expiry: NIST advises against both.

The same check runs for the command line, the API and the console, before anything is stored
and, at the command line, before the password is asked for a second time.
"""

from __future__ import annotations

import string
import unicodedata

from app.services.common_passwords import WORDS

MIN_LENGTH = 12
MAX_LENGTH = 128

# said about the service itself or its users: as easy to guess as the list
CONTEXT_WORDS = frozenset(
    {
        "peerline",
        "peer line",
        "peersupport",
        "peer support",
        "nurse",
        "clinic",
        "patient",
        "patients",
        "diabetes",
        "hospital",
        "health",
        "healthcare",
        "changeme",
        "welcome",
        "password",
        "passw0rd",
        "admin",
        "administrator",
        "correct horse battery staple",
        "correcthorsebatterystaple",
    }
)
_LEET = str.maketrans(
    {"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s", "5": "s", "7": "t"}
)
_EDGES = string.digits + string.punctuation + " "
# a password that is a run of one of these is a walk along the keyboard or the alphabet
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890123456789",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
    "qazwsxedcrfvtgbyhnujmikolp",
)


def password_problem(password: str, *, email: str = "") -> str | None:
    """What is wrong with this password, in words for the person choosing it; None when it will do."""
    length = len(password)
    if length < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if length > MAX_LENGTH:
        return f"at most {MAX_LENGTH} characters"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in password):
        return "letters, digits, spaces and symbols only (no control characters)"
    lowered = password.casefold()
    if _is_common(lowered):
        return "this is a commonly used password; choose a longer phrase of your own"
    if _repeats(lowered) or _is_sequence(lowered):
        return "this repeats itself or follows the keyboard; choose a longer phrase of your own"
    local_part = email.strip().casefold().partition("@")[0]
    core = lowered.strip(_EDGES)
    if len(local_part) >= 3 and (core == local_part or lowered == email.strip().casefold()):
        return "this is your email address; choose a phrase of your own"
    return None


def _variants(lowered: str) -> set[str]:
    """The password as typed, without the digits and symbols people add at either end, and
    with leetspeak read back as letters: "P@ssw0rd2024!" is "password"."""
    core = lowered.strip(_EDGES)
    return {
        lowered,
        core,
        lowered.translate(_LEET),
        core.translate(_LEET),
        core.translate(_LEET).strip(_EDGES),
    }


def _is_common(lowered: str) -> bool:
    for variant in _variants(lowered):
        if variant in WORDS or variant in CONTEXT_WORDS:
            return True
        # a common word said twice or more ("passwordpassword") is still that word
        unit = _unit(variant)
        if unit is not None and (unit in WORDS or unit in CONTEXT_WORDS):
            return True
    return False


def _unit(text: str) -> str | None:
    """The shortest piece that, repeated, makes up the whole text; None when there is none."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return None


def _repeats(lowered: str) -> bool:
    return _unit(lowered) is not None or len(set(lowered)) < 4


def _is_sequence(lowered: str) -> bool:
    compact = lowered.replace(" ", "")
    return any(compact in seq or compact in seq[::-1] for seq in _SEQUENCES)
