"""A generated tone that stands in for a care-team recording in development.

Without a Twilio account there is no real recording to fetch: the local fake hands back a
silent frame, which a browser's player shows as 0:00. A nurse trying the console should hear
that the player works, so development plays a quiet two-note tone as long as the message was,
made with the standard library's `wave` (no audio files in the repository).
"""

from __future__ import annotations

import io
import math
import struct
import wave

RATE = 8000  # telephone quality: small, and plenty for a tone
MAX_SECONDS = 30


def tone_wav(seconds: int | None) -> bytes:
    """A mono 16-bit WAV of `seconds` (1 to 30) alternating 440 and 660 Hz, half a second each."""
    length = min(max(int(seconds or 1), 1), MAX_SECONDS)
    frames = bytearray()
    for i in range(length * RATE):
        pitch = 440 if (i // (RATE // 2)) % 2 == 0 else 660
        frames += struct.pack("<h", int(6000 * math.sin(2 * math.pi * pitch * i / RATE)))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(bytes(frames))
    return out.getvalue()
