"""Building spoken TwiML with the SDK: slow voice, a pause between ideas, repeat once on silence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import phonenumbers
from twilio.twiml.voice_response import Gather, VoiceResponse

from ivr import prompts
from ivr.prompts import Prompt
from ivr.vocab import Language

_EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ES_DIGITS = ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve")
_DIGIT_WORDS: Mapping[Language, tuple[str, ...]] = {Language.EN: _EN_DIGITS, Language.ES: _ES_DIGITS}
_PLUS: Mapping[Language, str] = {Language.EN: "plus", Language.ES: "más"}


@dataclass(frozen=True)
class Voice:
    name: str
    locale: str


# The one place each language's voice is set: Polly's US English and US Spanish voices.
VOICES: Mapping[Language, Voice] = {
    Language.EN: Voice("Polly.Joanna", "en-US"),
    Language.ES: Voice("Polly.Lupe", "es-US"),
}
# slower than Polly's default: many listeners are older or hard of hearing
RATE = "90%"
PAUSE_SECONDS = 1


@dataclass(frozen=True)
class Sentence:
    """One prompt as it will be said: its name (for recorded audio), its words, and whether
    values were put into it (a recording cannot say a name or a number, so those are spoken)."""

    prompt: Prompt | None
    text: str
    filled: bool = False


@dataclass(frozen=True)
class Speaker:
    """Who is listening: their language, and the recorded audio an admin gave some prompts."""

    language: Language = Language.EN
    audio: Mapping[tuple[Prompt, Language], str] = field(default_factory=dict)

    def line(self, prompt: Prompt, **values: object) -> Sentence:
        return Sentence(prompt, prompts.text(prompt, self.language, **values), filled=bool(values))

    def plain(self, words: str) -> Sentence:
        """Words that are no catalogue prompt: the managed treatment notice."""
        return Sentence(None, words)

    def __call__(self, prompt: Prompt, **values: object) -> Sentence:
        return self.line(prompt, **values)


Spoken = Sentence | Prompt


def say(node: VoiceResponse | Gather, speaker: Speaker, *sentences: Spoken) -> None:
    """Each sentence in the listener's voice and language, slowly, with a pause after it."""
    for item in sentences:
        sentence = speaker.line(item) if isinstance(item, Prompt) else item
        recorded = speaker.audio.get((sentence.prompt, speaker.language)) if sentence.prompt else None
        if recorded is not None and not sentence.filled:
            node.play(recorded)
        else:
            voice = VOICES[speaker.language]
            spoken = node.say(voice=voice.name, language=voice.locale)
            spoken.prosody(sentence.text, rate=RATE)
        node.pause(length=PAUSE_SECONDS)


Question = Spoken | tuple[Spoken, ...]


def ask(
    response: VoiceResponse,
    speaker: Speaker,
    prompt: Question,
    action: str,
    *,
    repeat: Question | None = None,
    repeat_action: str | None = None,
    num_digits: int | None = 1,
    on_silence: Spoken = Prompt.NO_ANSWER_GOODBYE,
    then: str | None = None,
    once: bool = False,
    also: tuple[tuple[Speaker, Spoken], ...] = (),
) -> VoiceResponse:
    """Ask for keys; on silence ask once more, then say goodbye and hang up.

    Two Gathers in a row need no state between requests: Twilio falls through to the
    next verb when a Gather times out with no digits. The second may post elsewhere
    (`repeat_action`), so a wrong key can be told apart from a first one. With `then`,
    silence does not end the call: Twilio is sent on to that URL instead. `once` asks a
    single time: the question is itself the repeat. `also` is said inside each ask in
    another voice: the bilingual opening's "para español, oprima 2".
    """
    asks = ((prompt, action), (repeat or prompt, repeat_action or action))[: 1 if once else 2]
    for question, url in asks:
        if num_digits is None:
            gather = response.gather(input="dtmf", finish_on_key="#", timeout=10, action=url, method="POST")
        else:
            gather = response.gather(
                input="dtmf", num_digits=num_digits, timeout=7, action=url, method="POST"
            )
        say(gather, speaker, *(question if isinstance(question, tuple) else (question,)))
        for other, words in also:
            say(gather, other, words)
    if then is not None:
        response.redirect(then, method="POST")
        return response
    say(response, speaker, on_silence)
    response.hangup()
    return response


def spoken_digits(e164: str) -> str:
    """A number read one digit at a time (the fallback's apology, which keeps its old wording)."""
    return ", ".join(ch for ch in e164 if ch.isdigit())


def spoken_number(e164: str, caller_region: str, language: Language = Language.EN) -> str:
    """The care team's number as people say it: 'six one seven, five five five, zero one zero zero'
    ('seis uno siete, cinco cinco cinco, cero uno cero cero' in Spanish).

    Grouped as the caller's own country writes it, one digit at a time, as people read a
    phone number out in either language; a caller in the number's own country hears no
    country code, anyone else hears it first ('plus four four', 'más cuatro cuatro').
    """
    words = _DIGIT_WORDS[language]
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ", ".join(_words(group, words) for group in _groups(e164))
    caller_code = phonenumbers.country_code_for_region(caller_region.upper())
    if caller_code == parsed.country_code:
        written = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return ", ".join(_words(group, words) for group in _groups(written))
    written = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    country, *rest = _groups(written)
    plus = _PLUS[language]
    return ", ".join([f"{plus} {_words(country, words)}", *(_words(group, words) for group in rest)])


def _groups(written: str) -> list[str]:
    """The runs of digits in a number as written: '(617) 555-0100' -> ['617', '555', '0100']."""
    groups, current = [], ""
    for ch in written:
        if ch.isdigit():
            current += ch
        elif current:
            groups.append(current)
            current = ""
    return [*groups, current] if current else groups


def _words(digits: str, words: tuple[str, ...] = _EN_DIGITS) -> str:
    return " ".join(words[int(ch)] for ch in digits)


def spoken_time(moment: datetime, today: datetime, language: Language = Language.EN) -> str:
    """When someone can be called, as people say it, in the moment's own zone:
    'after 9 in the morning', 'tomorrow after 7:30 in the evening';
    'después de las nueve de la mañana', 'mañana después de las siete y media de la noche'."""
    days = (moment.date() - today.date()).days
    if language == Language.ES:
        return _spoken_time_es(moment, days)
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
    when = "after" if days <= 0 else "tomorrow after" if days == 1 else f"on {moment:%A} after"
    return f"{when} {clock} {part}"


_ES_HOURS = (
    "doce",
    "una",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
)
_ES_DAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_ES_NUMBERS = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_ES_TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta"}


def _es_minutes(minute: int) -> str:
    if minute == 15:
        return "y cuarto"
    if minute == 30:
        return "y media"
    if minute < 30:
        return f"y {_ES_NUMBERS[minute]}"
    tens, ones = divmod(minute, 10)
    return f"y {_ES_TENS[tens]}" + (f" y {_ES_NUMBERS[ones]}" if ones else "")


def _spoken_time_es(moment: datetime, days: int) -> str:
    """Spanish tells the time in words and by the part of the day: 'las nueve de la mañana',
    'la una y media de la tarde', 'las ocho de la noche'; noon is 'el mediodía'."""
    if (moment.hour, moment.minute) == (12, 0):
        clock = "el mediodía"
    else:
        hour = moment.hour % 12
        article = "la" if hour == 1 else "las"
        clock = f"{article} {_ES_HOURS[hour]}"
        if moment.minute:
            clock += f" {_es_minutes(moment.minute)}"
        if moment.hour < 12:
            clock += " de la mañana" if moment.hour >= 1 else " de la madrugada"
        elif moment.hour < 20:
            clock += " de la tarde"
        else:
            clock += " de la noche"
    after = "después del mediodía" if clock == "el mediodía" else f"después de {clock}"
    if days <= 0:
        return after
    if days == 1:
        return f"mañana {after}"
    return f"el {_ES_DAYS[moment.weekday()]} {after}"
