"""Where the fake REST API and the simulated telephones of one process meet.

Twilio's REST API can place a call, move a live one, or end it; in the simulator the
calls are played by `Telephone`s. A telephone registers each leg it plays and each room
it is in; the fake REST API (`fake_twilio.py`) finds them here, whichever instance of it
took the request: the one `peerline fake-twilio` serves, the one `peerline phone`
serves, or the one a test wires into the service in-process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
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
    # rooms whose parked calls have nowhere else to ring, oldest first: forgotten after
    # PARK_SECONDS if no telephone came for them (a timer thread each cost more than the
    # call: in-process, every partner's leg is placed before its room is read)
    stale: deque[tuple[float, str, object]] = field(default_factory=deque)

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
            self._forget_stale(time.monotonic())
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
        now = time.monotonic()
        with self.lock:
            self._forget_stale(now)
            take = self.rooms.get(room) if room else None
            if take is None and room:
                self.parked.setdefault(room, []).append((call, elsewhere))
                if elsewhere is None:
                    self.stale.append((now + PARK_SECONDS, room, call))
        if take is not None:
            take(call)  # only queues it for that telephone: quick, and before the API answers
        elif room and elsewhere is not None:
            timer = threading.Timer(PARK_SECONDS, self._unpark, (room, call))
            timer.daemon = True
            timer.start()
        elif elsewhere is not None:
            threading.Thread(target=elsewhere, args=(call,), daemon=True).start()

    def _forget_stale(self, now: float) -> None:
        """Parked calls with nowhere else to ring, whose room no telephone came for in time:
        what the timer would have done (nothing rings), without a thread. Holds the lock."""
        while self.stale and self.stale[0][0] <= now:
            _, room, call = self.stale.popleft()
            waiting = self.parked.get(room)
            if waiting is not None:
                waiting[:] = [entry for entry in waiting if entry[0] is not call]
                if not waiting:
                    self.parked.pop(room, None)

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
