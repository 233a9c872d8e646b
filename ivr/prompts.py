"""Every sentence a caller hears, in every language Peerline speaks.

One idea a sentence, short words, slow voice. Spanish is written as it is said on the
phone in the US: plain, short, and `usted`. A sentence with `{name}`, `{count}`, `{when}`
or `{number}` has the value put in by the step that says it (times and numbers already
in the listener's words: ivr/speech.py).

The English constants below (`GREETING`, ...) are the same catalogue entries by the
names the call sheet has always used; nothing is written twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from ivr.vocab import Language

EN, ES = Language.EN, Language.ES

# A prompt longer than this is split, not lengthened: a listener keeps one short idea at a time.
MAX_WORDS: Final = 25


class Prompt(enum.StrEnum):
    """A prompt's stable name: the key of its text in every language and of its recorded audio."""

    GREETING = "greeting"
    GREETING_NAMED = "greeting_named"
    LANGUAGE_CHOICE = "language_choice"
    MISSED_ONCE = "missed_once"
    MISSED_MANY = "missed_many"
    NOTICE = "notice"
    ASK_HOME_NUMBER = "ask_home_number"
    ASK_HOME_NUMBER_AGAIN = "ask_home_number_again"
    NUMBER_NOT_FOUND = "number_not_found"
    NUMBER_GIVE_UP = "number_give_up"
    LOCKED_OUT = "locked_out"
    NO_ANSWER_GOODBYE = "no_answer_goodbye"
    NOT_PAIRED = "not_paired"
    PARTNER_QUIET = "partner_quiet"
    PARTNER_BUSY = "partner_busy"
    CONNECTING = "connecting"
    STAR_HINT = "star_hint"
    REPEAT_HINT = "repeat_hint"
    HOLD = "hold"
    WHISPER = "whisper"
    WHISPER_ASK = "whisper_ask"
    WHISPER_ASK_AGAIN = "whisper_ask_again"
    WHISPER_DECLINED = "whisper_declined"
    CHECK_GREETING = "check_greeting"
    CHECK_ASK = "check_ask"
    CALLER_GONE = "caller_gone"
    PARTNER_AWAY = "partner_away"
    PARTNER_HUNG_UP = "partner_hung_up"
    PARTNER_UNREACHED = "partner_unreached"
    MENU_MESSAGE = "menu_message"
    MENU_BACK = "menu_back"
    MENU_NURSE = "menu_nurse"
    BACK_TO_PARTNER = "back_to_partner"
    NURSE_CONNECTING = "nurse_connecting"
    OFFER_MESSAGE = "offer_message"
    RECORD_PROMPT = "record_prompt"
    MESSAGE_THANKS = "message_thanks"
    NO_MESSAGE = "no_message"
    GOODBYE = "goodbye"
    JUST_GOODBYE = "just_goodbye"
    LOST = "lost"
    APOLOGY = "apology"
    SUPPORT = "support"
    SUPPORT_AGAIN = "support_again"
    REMINDER_GREETING = "reminder_greeting"
    REMINDER = "reminder"
    REMINDER_ASK = "reminder_ask"
    REMINDER_LATER = "reminder_later"
    REMINDER_MACHINE = "reminder_machine"
    REMINDER_CHECK_ASK = "reminder_check_ask"


P = Prompt

CATALOGUE: Final[Mapping[Prompt, Mapping[Language, str]]] = {
    P.GREETING: {EN: "Hello. This is Peerline.", ES: "Hola. Le habla Peerline."},
    P.GREETING_NAMED: {EN: "Hello, {name}. This is Peerline.", ES: "Hola, {name}. Le habla Peerline."},
    # said in its own language to a caller we do not know yet; its key is LANGUAGE_KEYS
    P.LANGUAGE_CHOICE: {EN: "For English, press 1.", ES: "Para español, oprima 2."},
    P.MISSED_ONCE: {
        EN: "Your partner tried to call you once since you last talked.",
        ES: "Su compañero trató de llamarle una vez desde la última vez que hablaron.",
    },
    P.MISSED_MANY: {
        EN: "Your partner tried to call you {count} times since you last talked.",
        ES: "Su compañero trató de llamarle {count} veces desde la última vez que hablaron.",
    },
    # the built-in treatment notice: what is said until an admin activates a managed version
    P.NOTICE: {
        EN: "Please remember. Do not change any medicine or treatment without talking to your doctor first.",
        ES: "Por favor, recuerde. No cambie ninguna medicina ni tratamiento sin hablar antes con su médico.",
    },
    P.ASK_HOME_NUMBER: {
        EN: "Please enter your home phone number. Then press the pound key.",
        ES: "Por favor, marque el número de teléfono de su casa. Luego oprima la tecla de numeral.",
    },
    # only after a wrong entry: "again" would puzzle someone who has not typed anything yet
    P.ASK_HOME_NUMBER_AGAIN: {
        EN: "Please enter your home phone number again. Then press the pound key.",
        ES: "Por favor, marque otra vez el número de su casa. Luego oprima la tecla de numeral.",
    },
    P.NUMBER_NOT_FOUND: {EN: "Sorry. I did not find that number.", ES: "Lo siento. No encontré ese número."},
    P.NUMBER_GIVE_UP: {
        EN: "I could not find your number. Please call your care team for help.",
        ES: "No pude encontrar su número. Por favor, llame a su equipo de salud para pedir ayuda.",
    },
    P.LOCKED_OUT: {
        EN: "Too many numbers were tried from this phone. "
        "Please try again in one hour, or call your care team.",
        ES: "Se probaron demasiados números desde este teléfono. Intente otra vez en una hora, "
        "o llame a su equipo de salud.",
    },
    P.NO_ANSWER_GOODBYE: {EN: "I did not hear anything. Goodbye.", ES: "No escuché nada. Adiós."},
    P.NOT_PAIRED: {
        EN: "You do not have a Peerline partner right now. Your care team can help.",
        ES: "Por ahora no tiene compañero de Peerline. Su equipo de salud le puede ayudar.",
    },
    P.PARTNER_QUIET: {
        EN: "Your partner does not take calls at this hour. You can call them {when}, your time.",
        ES: "Su compañero no recibe llamadas a esta hora. Puede llamarle {when}, hora suya.",
    },
    P.PARTNER_BUSY: {
        EN: "Your partner is on another call right now. Please try again a little later.",
        ES: "Su compañero está en otra llamada. Por favor, intente otra vez un poco más tarde.",
    },
    P.CONNECTING: {
        EN: "I am calling your partner. Please hold.",
        ES: "Estoy llamando a su compañero. Por favor, espere.",
    },
    P.STAR_HINT: {
        EN: "During the call, press star to leave a message for your care team.",
        ES: "Durante la llamada, oprima asterisco para dejar un mensaje a su equipo de salud.",
    },
    # one repeat key for the whole call: 9, never star (star steps out of a conversation)
    P.REPEAT_HINT: {
        EN: "To hear a question again, press 9.",
        ES: "Para escuchar una pregunta otra vez, oprima 9.",
    },
    # waitUrl: what someone alone in the room hears, between pauses
    P.HOLD: {EN: "Please stay on the line.", ES: "Por favor, no cuelgue."},
    P.WHISPER: {
        EN: "Your Peerline partner is calling you.",
        ES: "Su compañero de Peerline le está llamando.",
    },
    P.WHISPER_ASK: {EN: "To talk now, press 1.", ES: "Para hablar ahora, oprima 1."},
    P.WHISPER_ASK_AGAIN: {
        EN: "To talk now, press 1. If you cannot talk now, just hang up.",
        ES: "Para hablar ahora, oprima 1. Si no puede hablar ahora, simplemente cuelgue.",
    },
    P.WHISPER_DECLINED: {EN: "All right. Goodbye.", ES: "Está bien. Adiós."},
    # the partner's phone answered, but machine detection could not tell a person: no names yet
    P.CHECK_GREETING: {EN: "Hello. This is Peerline.", ES: "Hola. Le habla Peerline."},
    P.CHECK_ASK: {EN: "To take this call, press 1.", ES: "Para tomar esta llamada, oprima 1."},
    P.CALLER_GONE: {
        EN: "Your partner is no longer on the line. Please call them back later. Goodbye.",
        ES: "Su compañero ya no está en la línea. Por favor, llámele más tarde. Adiós.",
    },
    P.PARTNER_AWAY: {
        EN: "Your partner stepped away for a moment. Please stay on the line.",
        ES: "Su compañero se apartó un momento. Por favor, no cuelgue.",
    },
    P.PARTNER_HUNG_UP: {EN: "Your partner has hung up.", ES: "Su compañero colgó."},
    P.PARTNER_UNREACHED: {
        EN: "Your partner could not come to the phone. I will let them know you called.",
        ES: "Su compañero no pudo contestar. Le voy a avisar que usted llamó.",
    },
    P.MENU_MESSAGE: {
        EN: "To leave a message for your care team, press 1.",
        ES: "Para dejar un mensaje a su equipo de salud, oprima 1.",
    },
    P.MENU_BACK: {EN: "To go back to your partner, press 2.", ES: "Para volver con su compañero, oprima 2."},
    P.MENU_NURSE: {
        EN: "To speak to a nurse now, press 0.",
        ES: "Para hablar ahora con una enfermera, oprima 0.",
    },
    P.BACK_TO_PARTNER: {EN: "I will take you back to your partner.", ES: "Le regreso con su compañero."},
    P.NURSE_CONNECTING: {
        EN: "I am putting you through to a nurse. Please hold.",
        ES: "Le comunico con una enfermera. Por favor, espere.",
    },
    P.OFFER_MESSAGE: {
        EN: "To leave a message for your care team, press 1. Or just hang up.",
        ES: "Para dejar un mensaje a su equipo de salud, oprima 1. O simplemente cuelgue.",
    },
    P.RECORD_PROMPT: {
        EN: "After the tone, say your message. Press the pound key when you are done.",
        ES: "Después del tono, diga su mensaje. Cuando termine, oprima la tecla de numeral.",
    },
    P.MESSAGE_THANKS: {
        EN: "Thank you. Your care team will get your message.",
        ES: "Gracias. Su equipo de salud va a recibir su mensaje.",
    },
    # Twilio skips the Record action when nothing was recorded and goes on with the next verb
    P.NO_MESSAGE: {EN: "I did not hear a message.", ES: "No escuché ningún mensaje."},
    P.GOODBYE: {EN: "Thank you for calling Peerline. Goodbye.", ES: "Gracias por llamar a Peerline. Adiós."},
    P.JUST_GOODBYE: {EN: "Goodbye.", ES: "Adiós."},
    P.LOST: {
        EN: "Sorry. Something went wrong with this call.",
        ES: "Lo siento. Algo salió mal con esta llamada.",
    },
    P.APOLOGY: {
        EN: "We are sorry. Peerline cannot connect your call right now. Please try again later.",
        ES: "Lo sentimos. Peerline no puede conectar su llamada ahora. Por favor, intente más tarde.",
    },
    P.SUPPORT: {
        EN: "To reach your care team, call {number}.",
        ES: "Para hablar con su equipo de salud, llame al {number}.",
    },
    P.SUPPORT_AGAIN: {EN: "Again, that is {number}.", ES: "Repito, es el {number}."},
    P.REMINDER_GREETING: {EN: "Hello, {name}. This is Peerline.", ES: "Hola, {name}. Le habla Peerline."},
    P.REMINDER: {
        EN: "You and your partner have not talked in a while.",
        ES: "Usted y su compañero no han hablado en un tiempo.",
    },
    P.REMINDER_ASK: {
        EN: "To talk to your partner now, press 1.",
        ES: "Para hablar ahora con su compañero, oprima 1.",
    },
    P.REMINDER_LATER: {
        EN: "Please call your partner soon, at the Peerline number. Goodbye.",
        ES: "Por favor, llame pronto a su compañero, al número de Peerline. Adiós.",
    },
    # an answering machine may be heard by anyone: no condition, no person
    P.REMINDER_MACHINE: {
        EN: "Hello. This is a friendly reminder from Peerline. Please call us back when you can. Goodbye.",
        ES: "Hola. Este es un recordatorio de Peerline. Por favor, llámenos cuando pueda. Adiós.",
    },
    # machine detection said `unknown`: a key press shows a person is there before any name is said
    P.REMINDER_CHECK_ASK: {
        EN: "To hear your message, press 1.",
        ES: "Para escuchar su mensaje, oprima 1.",
    },
}

# The key a caller we do not know yet presses to hear the call in that language.
LANGUAGE_KEYS: Final[Mapping[Language, str]] = {EN: "1", ES: "2"}
# The language a caller we do not know yet hears first, with the others offered by key.
OPENING_LANGUAGE: Final = EN
# One key repeats the last question at every menu, for the whole call.
REPEAT_KEY: Final = "9"


def text(prompt: Prompt, language: Language, **values: object) -> str:
    """The prompt in that language, with its values put in."""
    words = CATALOGUE[prompt][language]
    if not values:
        return words
    if isinstance(name := values.get("name"), str):
        values["name"] = spoken_name(name)
    return words.format(**values)


def spoken_name(name: str) -> str:
    """A name as a sentence says it: one kept as "May C." ends the sentence itself, and
    "Hello, May C.." would be read twice."""
    return name.rstrip(". ")


# The treatment notice's built-in version: the one on record for a call when no managed
# version has been activated (app/services/notices.py).
NOTICE_VERSION: Final = "2026-01"


def _en(prompt: Prompt) -> str:
    return CATALOGUE[prompt][EN]


# English, by the names the call sheet and its tests have always used.
GREETING: Final = _en(P.GREETING)
GREETING_NAMED: Final = _en(P.GREETING_NAMED)
MISSED_ONCE: Final = _en(P.MISSED_ONCE)
MISSED_MANY: Final = _en(P.MISSED_MANY)
NOTICE: Final = _en(P.NOTICE)
ASK_HOME_NUMBER: Final = _en(P.ASK_HOME_NUMBER)
ASK_HOME_NUMBER_AGAIN: Final = _en(P.ASK_HOME_NUMBER_AGAIN)
NUMBER_NOT_FOUND: Final = _en(P.NUMBER_NOT_FOUND)
NUMBER_GIVE_UP: Final = _en(P.NUMBER_GIVE_UP)
LOCKED_OUT: Final = _en(P.LOCKED_OUT)
NO_ANSWER_GOODBYE: Final = _en(P.NO_ANSWER_GOODBYE)
NOT_PAIRED: Final = _en(P.NOT_PAIRED)
PARTNER_QUIET: Final = _en(P.PARTNER_QUIET)
PARTNER_BUSY: Final = _en(P.PARTNER_BUSY)
CONNECTING: Final = _en(P.CONNECTING)
STAR_HINT: Final = _en(P.STAR_HINT)
REPEAT_HINT: Final = _en(P.REPEAT_HINT)
HOLD: Final = _en(P.HOLD)
WHISPER: Final = _en(P.WHISPER)
WHISPER_ASK: Final = _en(P.WHISPER_ASK)
WHISPER_ASK_AGAIN: Final = _en(P.WHISPER_ASK_AGAIN)
WHISPER_DECLINED: Final = _en(P.WHISPER_DECLINED)
CHECK_GREETING: Final = _en(P.CHECK_GREETING)
CHECK_ASK: Final = _en(P.CHECK_ASK)
CALLER_GONE: Final = _en(P.CALLER_GONE)
PARTNER_AWAY: Final = _en(P.PARTNER_AWAY)
PARTNER_HUNG_UP: Final = _en(P.PARTNER_HUNG_UP)
PARTNER_UNREACHED: Final = _en(P.PARTNER_UNREACHED)
MENU_MESSAGE: Final = _en(P.MENU_MESSAGE)
MENU_BACK: Final = _en(P.MENU_BACK)
MENU_NURSE: Final = _en(P.MENU_NURSE)
BACK_TO_PARTNER: Final = _en(P.BACK_TO_PARTNER)
NURSE_CONNECTING: Final = _en(P.NURSE_CONNECTING)
OFFER_MESSAGE: Final = _en(P.OFFER_MESSAGE)
RECORD_PROMPT: Final = _en(P.RECORD_PROMPT)
MESSAGE_THANKS: Final = _en(P.MESSAGE_THANKS)
NO_MESSAGE: Final = _en(P.NO_MESSAGE)
GOODBYE: Final = _en(P.GOODBYE)
JUST_GOODBYE: Final = _en(P.JUST_GOODBYE)
LOST: Final = _en(P.LOST)
APOLOGY: Final = _en(P.APOLOGY)
SUPPORT: Final = _en(P.SUPPORT)
SUPPORT_AGAIN: Final = _en(P.SUPPORT_AGAIN)
REMINDER_GREETING: Final = _en(P.REMINDER_GREETING)
REMINDER: Final = _en(P.REMINDER)
REMINDER_ASK: Final = _en(P.REMINDER_ASK)
REMINDER_LATER: Final = _en(P.REMINDER_LATER)
REMINDER_MACHINE: Final = _en(P.REMINDER_MACHINE)
REMINDER_CHECK_ASK: Final = _en(P.REMINDER_CHECK_ASK)
SPANISH_CHOICE: Final = CATALOGUE[P.LANGUAGE_CHOICE][ES]
