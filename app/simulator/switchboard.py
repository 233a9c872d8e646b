"""Where the fake REST API and the simulated telephones of one process meet.

Twilio's REST API can place a call, move a live one, or end it; in the simulator the
calls are played by `Telephone`s. A telephone registers each leg it plays and each room
it is in; the fake REST API (`fake_twilio.py`) finds them here, whichever instance of it
took the request: the one `peerline fake-twilio` serves, the one `peerline phone`
serves, or the one a test wires into the service in-process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from ivr.vocab import CallStatus


class PlayedLeg(Protocol):
    """A leg a telephone plays: Twilio's REST API may move it or end it."""

    @property
    def status(self) -> CallStatus: ...

    def redirect(self, url: str | None, twiml: str | None) -> None: ...

    def end(self) -> None: ...


# A leg placed for a room before its telephone has read the TwiML that names the room
# waits this long for it; then it rings wherever calls without a telephone ring.
PARK_SECONDS = 2.0

Ring = Callable[[object], None]


def room_of(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("room", [""])[0]


@dataclass
class Switchboard:
    legs: dict[str, PlayedLeg] = field(default_factory=dict)
    rooms: dict[str, Ring] = field(default_factory=dict)
    parked: dict[str, list[tuple[object, Ring | None]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def play(self, sid: str, leg: PlayedLeg) -> None:
        with self.lock:
            self.legs[sid] = leg

    def leg(self, sid: str) -> PlayedLeg | None:
        with self.lock:
            return self.legs.get(sid)

    def forget(self, sid: str) -> None:
        with self.lock:
            self.legs.pop(sid, None)

    def wait_in(self, room: str, take: Ring) -> None:
        """A telephone has a leg in `room`: calls placed for that room ring on it, also one
        placed a moment before the telephone read the room's name."""
        with self.lock:
            self.rooms[room] = take
            waiting = self.parked.pop(room, [])
        for call, _elsewhere in waiting:
            take(call)

    def leave(self, room: str) -> None:
        with self.lock:
            self.rooms.pop(room, None)

    def place(self, url: str, call: object, elsewhere: Ring | None) -> None:
        """A call was placed: it rings on the telephone in the room its URL names, or, when
        no telephone has that room, on `elsewhere` (the terminal of `peerline fake-twilio`)."""
        room = room_of(url)
        with self.lock:
            take = self.rooms.get(room) if room else None
            if take is None and room:
                self.parked.setdefault(room, []).append((call, elsewhere))
        if take is not None:
            take(call)  # only queues it for that telephone: quick, and before the API answers
        elif room:
            timer = threading.Timer(PARK_SECONDS, self._unpark, (room, call))
            timer.daemon = True
            timer.start()
        elif elsewhere is not None:
            threading.Thread(target=elsewhere, args=(call,), daemon=True).start()

    def _unpark(self, room: str, call: object) -> None:
        with self.lock:
            waiting = self.parked.get(room, [])
            mine = [entry for entry in waiting if entry[0] is call]
            for entry in mine:
                waiting.remove(entry)
            if not waiting:
                self.parked.pop(room, None)
        for _call, elsewhere in mine:
            if elsewhere is not None:
                elsewhere(call)


SWITCHBOARD = Switchboard()
