"""The daily digest: a short email of counts to each staff member who asked for one.

A staff member picks an hour (`StaffUser.digest_hour`, in PROGRAMME_TIMEZONE) on their
account page; at that hour they get how many new care-team messages came in, how many pairs
are on the attention list and how many reminder calls could not be placed, with a link to
the console. Counts only: an email leaves the programme's systems and may be read anywhere,
so it carries no name, no number, no condition and no id; the console holds the rest.

Once a day, whichever process gets there first: `claim` inserts the account's `digest_sent`
row for the programme-zone day, and the unique key lets only one insert through. The caller
commits the claim before it sends, and `release`s it if sending failed, so the next run tries
again. (A process that dies between the two leaves the day without a digest: a missed summary
is better than two.)

Services never commit; app/scheduler.py's `send_digests` owns the transactions.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from ipaddress import ip_address
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import AttentionFlag, CareTeamMessage, DigestSent, Reminder, StaffUser
from app.services.upsert import NewRow
from ivr.vocab import ReminderState

# without an earlier digest, "new" means the last day
FIRST_WINDOW = timedelta(hours=24)
# placed or not, Twilio gave no call: the reminder cannot ring anyone (see app/services/sweep.py)
NOT_PLACED = (ReminderState.FAILED, ReminderState.UNKNOWN)
SMTP_SECONDS = 20


@dataclass(frozen=True)
class Counts:
    since: datetime
    # since the last digest: a nurse reads only what is new to them
    new_messages: int
    not_placed: int
    # the list as it stands: a flag stays until someone has reached out
    attention: int


@dataclass(frozen=True)
class Digest:
    staff_user_id: int
    to: str
    day: str
    counts: Counts
    message: EmailMessage


def local_day(now: datetime, zone: str) -> tuple[str, int]:
    """The programme-zone day (YYYY-MM-DD) and hour of this moment."""
    local = now.astimezone(ZoneInfo(zone))
    return local.date().isoformat(), local.hour


def due(db: Session, now: datetime, zone: str) -> list[StaffUser]:
    """Accounts whose digest hour is this hour in the programme's zone, not disabled, and
    without today's digest yet. A day whose clock skips that hour (the spring change) has no
    digest for it."""
    day, hour = local_day(now, zone)
    sent_today = select(DigestSent.staff_user_id).where(DigestSent.day == day)
    return list(
        db.scalars(
            select(StaffUser)
            .where(
                StaffUser.digest_hour == hour,
                StaffUser.disabled_at.is_(None),
                StaffUser.id.not_in(sent_today),
            )
            .order_by(StaffUser.id)
        )
    )


def last_sent(db: Session, staff_user_id: int, before_day: str) -> datetime | None:
    return db.scalar(
        select(func.max(DigestSent.sent_at)).where(
            DigestSent.staff_user_id == staff_user_id, DigestSent.day < before_day
        )
    )


def counts(db: Session, *, since: datetime) -> Counts:
    """What the digest says, counted by the database; nothing about anyone leaves it."""
    new_messages = db.scalar(
        select(func.count(CareTeamMessage.id)).where(CareTeamMessage.received_at >= since)
    )
    attention = db.scalar(select(func.count(AttentionFlag.id)).where(AttentionFlag.cleared_at.is_(None)))
    not_placed = db.scalar(
        select(func.count(Reminder.id)).where(Reminder.state.in_(NOT_PLACED), Reminder.updated_at >= since)
    )
    return Counts(since, new_messages or 0, not_placed or 0, attention or 0)


def _several(n: int, one: str, many: str, none: str) -> str:
    return none if n == 0 else f"{n} {one if n == 1 else many}"


def messages_line(c: Counts) -> str:
    return _several(c.new_messages, "new message", "new messages", "no new messages") + " for the care team"


def not_placed_line(c: Counts) -> str:
    if c.not_placed == 0:
        return "no reminder call failed to go out"
    return _several(c.not_placed, "reminder call", "reminder calls", "") + " could not be placed"


def attention_line(c: Counts) -> str:
    return _several(c.attention, "pair needs", "pairs need", "no pair needs") + " attention"


def summary(c: Counts) -> str:
    """One line, for the command line's dry run and the log of what went out."""
    return f"{messages_line(c)}, {attention_line(c)}, {not_placed_line(c)}"


def compose(
    *, to: str, sender: str, counts: Counts, first: bool, now: datetime, zone: str, console_url: str
) -> EmailMessage:
    """Plain text, a few lines: the counts and where to read the rest."""
    local = now.astimezone(ZoneInfo(zone))
    c = counts
    message = EmailMessage()
    messages = _several(c.new_messages, "new message", "new messages", "no new messages")
    message["Subject"] = f"Peerline: {messages}, {attention_line(c)}"
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # a summary nobody should auto-reply to (out-of-office answers go nowhere useful)
    message["Auto-Submitted"] = "auto-generated"
    period = "In the last 24 hours" if first else "Since your last summary"
    body = [
        f"Peerline daily summary, {local:%A %-d %B %Y}",
        "",
        f"{period}:",
        f"- {messages_line(c)}",
        f"- {not_placed_line(c)}",
        "",
        "On the attention list now:",
        f"- {attention_line(c)}",
        "",
        f"Open the console to see them: {console_url}",
        "",
        f"You asked for this summary every day at {local:%H}:00.",
        f"To change the hour or stop it: {console_url}account",
    ]
    message.set_content("\n".join(body) + "\n")
    return message


def claim(db: Session, staff_user_id: int, day: str, now: datetime) -> bool:
    """True when this caller may send the account's digest for the day: the unique key lets
    one insert through, whichever process or session tries. Commit before sending."""
    return _CLAIM.made(db, {"staff_user_id": staff_user_id, "day": day, "sent_at": now}) is not None


_CLAIM = NewRow(DigestSent.__table__, ["staff_user_id", "day", "sent_at"], ["staff_user_id", "day"])


def release(db: Session, staff_user_id: int, day: str) -> None:
    """Sending failed: give the day back, so the next run sends it."""
    db.execute(delete(DigestSent).where(DigestSent.staff_user_id == staff_user_id, DigestSent.day == day))


def prepare(
    db: Session, user: StaffUser, *, now: datetime, zone: str, sender: str, console_url: str
) -> Digest:
    """The account's digest as it would go out now (nothing is claimed)."""
    day, _ = local_day(now, zone)
    previous = last_sent(db, user.id, day)
    since = previous if previous is not None else now - FIRST_WINDOW
    found = counts(db, since=since)
    message = compose(
        to=user.email,
        sender=sender,
        counts=found,
        first=previous is None,
        now=now,
        zone=zone,
        console_url=console_url,
    )
    return Digest(user.id, user.email, day, found, message)


# ---------------------------------------------------------------- sending


class MailError(Exception):
    """The mail server could not be reached or refused the message."""


@dataclass(frozen=True)
class Mailer:
    """SMTP_URL: smtp://[user:password@]host[:port] (STARTTLS when the server offers it),
    or smtps://... (TLS from the first byte)."""

    host: str
    port: int
    tls: bool
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Mailer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise MailError("SMTP_URL must look like smtp://[user:password@]host[:port]")
        try:
            port = parts.port
        except ValueError:
            raise MailError("SMTP_URL has a port that is not a number") from None
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if tls else 25),
            tls=tls,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def _loopback(self) -> bool:
        try:
            return ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def send(self, message: EmailMessage) -> None:
        try:
            if self.tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=SMTP_SECONDS, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_SECONDS)
            with smtp:
                smtp.ehlo()
                # upgrade when offered; a relay on this machine is exempt, since the mail does
                # not cross a network there and such relays often offer it with a self-made cert
                secure = self.tls or self._loopback()
                if not secure and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                    secure = True
                if self.user is not None:
                    if not secure:
                        raise MailError(
                            f"{self.host} does not offer STARTTLS: the password is not sent in the "
                            "clear (use smtps:// or a server that offers it)"
                        )
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except MailError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"{type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        said = exc.smtp_error
        text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        return f"{exc.smtp_code} {text.splitlines()[0] if text else ''}".strip()
    return str(exc).splitlines()[0] if str(exc) else "failed"
