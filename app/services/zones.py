"""Which time-zone names a participant may be given: a real place, not a fixed offset or an old alias.

"EST" is UTC-5 all year: a participant given it in July would be rung an hour off, and quiet
hours would slip with daylight saving time. "US/Eastern" and "EST5EDT" keep the right clock
but are deprecated aliases that tz database releases may drop. So enrolment, the API, the
console and the command line all refuse them here, the same way, with a place to use instead.
Zones already stored are still read (ivr.quiet_hours.zone): nothing that worked stops working.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo

from ivr.quiet_hours import InvalidTimeZone, known_zones, zone

# the names that are a place in all but name: UTC is chosen knowingly, and has no DST to miss
UNIVERSAL = frozenset({"UTC", "Etc/UTC"})
# prefixes of the tz database's "backward" aliases for whole countries
_ALIAS_PREFIXES = ("US/", "Canada/", "Mexico/", "Brazil/", "Chile/", "SystemV/")
_ETC_OFFSET = re.compile(r"^Etc/GMT([+-])(\d{1,2})$")

# a real place for each alias staff are likely to type; the offset in the name picks the place
_PLACE_FOR = {
    "EST": "America/New_York",
    "EST5EDT": "America/New_York",
    "US/Eastern": "America/New_York",
    "US/East-Indiana": "America/Indiana/Indianapolis",
    "US/Michigan": "America/Detroit",
    "CST6CDT": "America/Chicago",
    "US/Central": "America/Chicago",
    "US/Indiana-Starke": "America/Indiana/Knox",
    "MST": "America/Phoenix",
    "US/Arizona": "America/Phoenix",
    "MST7MDT": "America/Denver",
    "US/Mountain": "America/Denver",
    "Navajo": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "US/Pacific": "America/Los_Angeles",
    "US/Alaska": "America/Anchorage",
    "US/Aleutian": "America/Adak",
    "HST": "Pacific/Honolulu",
    "US/Hawaii": "Pacific/Honolulu",
    "US/Samoa": "Pacific/Pago_Pago",
    "Canada/Atlantic": "America/Halifax",
    "Canada/Newfoundland": "America/St_Johns",
    "Canada/Eastern": "America/Toronto",
    "Canada/Central": "America/Winnipeg",
    "Canada/Mountain": "America/Edmonton",
    "Canada/Pacific": "America/Vancouver",
    "Mexico/General": "America/Mexico_City",
    "GMT": "Europe/London",
    "Etc/GMT": "Europe/London",
    "GMT0": "Europe/London",
    "GMT+0": "Europe/London",
    "GMT-0": "Europe/London",
    "Greenwich": "Europe/London",
    "Etc/Greenwich": "Europe/London",
}
# hours east of UTC → a place that keeps that offset in winter (Etc/GMT+5 is UTC-5)
_PLACE_AT_OFFSET = {
    -10: "Pacific/Honolulu",
    -9: "America/Anchorage",
    -8: "America/Los_Angeles",
    -7: "America/Denver",
    -6: "America/Chicago",
    -5: "America/New_York",
    -4: "America/Puerto_Rico",
    0: "Europe/London",
    1: "Europe/Paris",
}
_ANY_PLACE = "America/New_York"


def is_place(name: str) -> bool:
    """Whether a (known) zone name is one a participant may be given: Area/Place, or UTC."""
    if name in UNIVERSAL:
        return True
    return "/" in name and not name.startswith(("Etc/", *_ALIAS_PREFIXES))


def _tz_file(name: str) -> bytes | None:
    """The compiled rules of a zone as zoneinfo reads them (system files, else the tzdata package)."""
    for folder in TZPATH:
        path = Path(folder, name)
        if path.is_file():
            return path.read_bytes()
    try:
        return resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    except (ModuleNotFoundError, OSError):
        return None


def _main_places() -> set[str]:
    """The zones the tz database lists as places (zone1970.tab): never itself a link."""
    tab = _tz_file("zone1970.tab") or _tz_file("zone.tab") or b""
    return {
        fields[2]
        for line in tab.decode(errors="replace").splitlines()
        if not line.startswith("#") and len(fields := line.split("\t")) > 2
    }


@cache
def _same_rules_place(name: str) -> str | None:
    """The place an old alias ("Cuba", "Japan") links to: the tz database ships a link as a
    copy of its target's file, so the place whose rules are byte for byte the same, a main
    place first ("NZ" is Pacific/Auckland, though Antarctica/South_Pole is a copy too)."""
    rules = _tz_file(name)
    if rules is None:
        return None
    if rules == _tz_file("UTC"):
        return "UTC"
    main = _main_places()
    places = sorted(
        (z for z in known_zones() if is_place(z) and "/" in z and not z.startswith(("posix/", "right/"))),
        key=lambda z: (z not in main, z),
    )
    return next((z for z in places if _tz_file(z) == rules), None)


def suggestion(name: str) -> str:
    """A real place for a fixed-offset or alias name: what staff most likely meant."""
    if name in _PLACE_FOR:
        return _PLACE_FOR[name]
    offset = _ETC_OFFSET.match(name)
    if offset:
        # POSIX sign: Etc/GMT+5 is five hours *behind* UTC
        hours = int(offset.group(2)) * (-1 if offset.group(1) == "+" else 1)
        return _PLACE_AT_OFFSET.get(hours, _ANY_PLACE)
    return _same_rules_place(name) or _ANY_PLACE


def _why(name: str) -> str:
    if _ETC_OFFSET.match(name) or name in ("EST", "MST", "HST") or _PLACE_FOR.get(name) == "Europe/London":
        return "is a fixed offset that ignores daylight saving time"
    return "is an old alias, not a place"


def place_zone(name: str) -> ZoneInfo:
    """The zone for a participant, or InvalidTimeZone saying why not and which place to use."""
    found = zone(name)  # unknown names: "use an IANA name like America/New_York"
    if not is_place(name):
        raise InvalidTimeZone(
            f"{name!r} {_why(name)}; use the place where they live, e.g. {suggestion(name)}"
        )
    return found
