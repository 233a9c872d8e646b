"""Every sentence a caller hears. One idea a sentence, short words, slow voice."""

from __future__ import annotations

# The treatment notice is versioned: the version a caller heard is stored on the call.
NOTICE_VERSION = "2026-01"
NOTICE = "Please remember. Do not change any medicine or treatment without talking to your doctor first."

VOICE = "Polly.Joanna"
LANGUAGE = "en-US"
RATE = "90%"

GREETING = "Hello. This is Peerline."
GREETING_NAMED = "Hello, {name}. This is Peerline."
MISSED_ONCE = "Your partner tried to call you once since you last talked."
MISSED_MANY = "Your partner tried to call you {count} times since you last talked."

ASK_HOME_NUMBER = "Please enter your home phone number. Then press the pound key."
ASK_HOME_NUMBER_AGAIN = "Please enter your home phone number again. Then press the pound key."
NUMBER_NOT_FOUND = "Sorry. I did not find that number."
NUMBER_GIVE_UP = "I could not find your number. Please call your care team for help. Goodbye."
LOCKED_OUT = (
    "Too many numbers were tried from this phone. "
    "Please try again in one hour, or call your care team. Goodbye."
)
NO_ANSWER_GOODBYE = "I did not hear anything. Goodbye."

NOT_PAIRED = "You do not have a Peerline partner right now. Your care team can help."
PARTNER_QUIET = "Your partner does not take calls at this hour. You can call them {when}, your time."
CONNECTING = "I am calling your partner now."
STAR_HINT = "During the call, press star to leave a message for your care team."

WHISPER = "Your Peerline partner is calling."
WHISPER_ASK = "To talk now, press 1."
WHISPER_DECLINED = "All right. Goodbye."

CALL_ENDED = "Your call has ended."
PARTNER_UNREACHED = "Your partner could not come to the phone. I will let them know you called."

OFFER_MESSAGE = "To leave a message for your care team, press 1. Or just hang up."
RECORD_PROMPT = "After the tone, say your message. Press the pound key when you are done."
MESSAGE_THANKS = "Thank you. Your care team will get your message. Goodbye."
GOODBYE = "Thank you for calling Peerline. Goodbye."

LOST = "Sorry. Something went wrong with this call."
APOLOGY = "We are sorry. Peerline cannot connect your call right now. Please try again later."
SUPPORT = "To reach your care team, call {digits}."

REMINDER_GREETING = "Hello, {name}. This is Peerline."
REMINDER = "You and your partner have not talked in a while."
REMINDER_ASK = "To talk to your partner now, press 1."
REMINDER_LATER = "Please call your partner soon, at the Peerline number. Goodbye."
# an answering machine may be heard by anyone: no condition, no person
REMINDER_MACHINE = (
    "Hello. This is a friendly reminder from Peerline. Please call us back when you can. Goodbye."
)
