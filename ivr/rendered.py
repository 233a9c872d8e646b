"""TwiML that differs from caller to caller only by a name and a room, built once.

Most of what a known caller hears is the same for everyone in their language: the
greeting's words, the treatment notice, "I am calling your partner", the room's
settings. Building those elements with the SDK and serialising them took about a tenth
of a millisecond per call, on the request every call starts with. Here the SDK builds
the answer once for each shape (the step's facts and the line, but with placeholders
for the caller's name and the room), and each call fills its own name and room into
that text. The name goes in escaped as the serialiser escapes text; a room name is
letters, digits and dashes only, the same in a URL and in XML.

Every shape is checked when it is first built: the placeholders filled in must give
exactly what the SDK builds for the real name and room, or the shape is not kept and
that step is built whole, every time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import VoiceResponse

from ivr.prompts import spoken_name

# words no prompt, notice or URL ever contains, safe unchanged in a URL and in XML text
NAME_SLOT = "zqxNAMESLOTqxz"
ROOM_SLOT = "zqxROOMSLOTqxz"
_ROOM = re.compile(r"[A-Za-z0-9_-]+")
MAX_SHAPES = 2048


class Keyed(Protocol):
    @property
    def fixed(self) -> Hashable:
        """Everything about the line that the TwiML may depend on, but the time."""


L = TypeVar("L", bound=Keyed)
Build = Callable[[L, str | None, str, tuple[Hashable, ...]], VoiceResponse]


class Rendered(Generic[L]):
    """A step's TwiML, built by `build(line, name, room, key)` once per shape."""

    def __init__(self, build: Build[L]) -> None:
        self._build = build
        self._shapes: dict[Hashable, str | None] = {}  # None: this shape cannot be filled in
        self._lock = threading.Lock()

    def render(self, line: L, *, name: str | None, room: str, key: tuple[Hashable, ...]) -> str:
        if not _ROOM.fullmatch(room) or (name and (NAME_SLOT in name or ROOM_SLOT in name)):
            return str(self._build(line, name, room, key))
        shape = (line.fixed, bool(name), key)
        template = self._shapes.get(shape, "")
        if template == "":
            return self._first(shape, line, name, room, key)
        if template is None:
            return str(self._build(line, name, room, key))
        return _fill(template, name, room)

    def _first(self, shape: Hashable, line: L, name: str | None, room: str, key: tuple[Hashable, ...]) -> str:
        whole = str(self._build(line, name, room, key))
        template = str(self._build(line, NAME_SLOT if name else name, ROOM_SLOT, key))
        with self._lock:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            self._shapes[shape] = template if _fill(template, name, room) == whole else None
        return whole


def _fill(template: str, name: str | None, room: str) -> str:
    text = template.replace(NAME_SLOT, escape(spoken_name(name))) if name else template
    return text.replace(ROOM_SLOT, room)
