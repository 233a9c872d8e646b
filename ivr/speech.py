"""Building spoken TwiML with the SDK: slow voice, a pause between ideas, repeat once on silence."""

from __future__ import annotations

from datetime import datetime

from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr import prompts


def say(node: VoiceResponse | Gather, *sentences: str) -> None:
    for sentence in sentences:
        spoken = node.say(voice=prompts.VOICE, language=prompts.LANGUAGE)
        spoken.prosody(sentence, rate=prompts.RATE)
        node.pause(length=1)


def ask(
    response: VoiceResponse,
    prompt: str,
    action: str,
    *,
    repeat: str | None = None,
    num_digits: int | None = 1,
    on_silence: str = prompts.NO_ANSWER_GOODBYE,
) -> VoiceResponse:
    """Ask for keys; on silence ask once more, then say goodbye and hang up.

    Two Gathers in a row need no state between requests: Twilio falls through
    to the next verb when a Gather times out with no digits.
    """
    for text in (prompt, repeat or prompt):
        if num_digits is None:
            gather = response.gather(
                input="dtmf", finish_on_key="#", timeout=10, action=action, method="POST"
            )
        else:
            gather = response.gather(
                input="dtmf", num_digits=num_digits, timeout=7, action=action, method="POST"
            )
        say(gather, text)
    say(response, on_silence)
    response.hangup()
    return response


def spoken_digits(e164: str) -> str:
    """A number read one digit at a time, for the care-team line only."""
    return ", ".join(ch for ch in e164 if ch.isdigit())


def spoken_time(moment: datetime, today: datetime) -> str:
    """'after 9 in the morning' / 'tomorrow after 7:30 in the evening', in the moment's zone."""
    hour = moment.hour % 12 or 12
    clock = f"{hour}" if moment.minute == 0 else f"{hour}:{moment.minute:02d}"
    if moment.hour < 12:
        part = "in the morning"
    elif moment.hour < 18:
        part = "in the afternoon"
    else:
        part = "in the evening"
    if (moment.hour, moment.minute) == (12, 0):
        clock, part = "12", "noon"
    days = (moment.date() - today.date()).days
    when = "after" if days <= 0 else "tomorrow after" if days == 1 else f"on {moment:%A} after"
    return f"{when} {clock} {part}"
