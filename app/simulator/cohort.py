"""A synthetic programme, every call of it played through the real service.

`peerline simulate-cohort` enrols fictional pairs (555-01xx numbers only) and plays
weeks of their calls against the app in this process: each call goes through the signed
webhooks, the conference callbacks and the fake REST API, exactly as `Telephone` plays
them for the tests, and the reminder sweep runs as the scheduler would. Only the clock
is the simulation's own (the app's `context.clock`), so months pass in seconds.

The cohort looks like the trials behind the model: some pairs never engage, accepted
calls fall from about 2.4 a month in month 1 to 0.8 by month 6 and get shorter (15.6
to 6.8 minutes), some pairs are one-sided, partners refuse, are busy or in quiet hours,
reminders are answered or not, messages are left for the care team.

What the simulation meant to happen is written down as it goes (`TruthCall`, one per
call it made, and `TruthPair`, one per pair: when it was made, ended and last watched),
so a test can hold the calls table and every figure computed from it against what
really happened, call for call (tests/test_cohort.py, tests/test_cohort_truth.py).

Requests go to the app as one ASGI call each (asgi.py): at the issue's size, 200 pairs
over 26 weeks, that is 85,000 signed requests (docs/performance.md, "Synthetic cohort").
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from app.settings import Settings
from app.simulator.asgi import DirectClient, PhoneLine
from app.simulator.fake_twilio import PlacedCall
from app.simulator.telephone import (
    HANGS_UP,
    CallRecord,
    Exchange,
    Scripted,
    Telephone,
    new_sid,
)
from app.simulator.telephone import in_process_client as rest_client
from app.twilio.dialer import dialer_for
from ivr.vocab import AnsweredBy, CallStatus

log = logging.getLogger(__name__)

WEEK = timedelta(days=7)
MONTH = timedelta(days=30)  # the engagement measures' month since pairing
# fictional exchanges: only 555-0100..0199 on each, the range set aside for fiction
AREA_CODES = (
    "617", "202", "312", "415", "212", "305", "713", "206", "303", "404",
    "503", "602", "612", "614", "615", "816", "702", "704", "718", "773",
)  # fmt: skip
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
FIRST = ("Ana", "Bea", "Cal", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo", "Kit", "Lou", "May", "Ned")
LAST = "ABCDEFGHJKLMNPRSTW"
QUIET_HOURS = "21:00-08:00"
# peer calls start between 19:00 and 23:00 UTC: inside the day in every US zone, winter or
# summer, so only the calls meant to meet quiet hours meet them
PEER_HOURS_UTC = (19, 23)
# the sweep runs once a day, at 18:30 UTC: inside every US zone's reminder hours winter
# and summer, and outside everyone's quiet hours, so a bridge from a reminder never meets
# them. (Each sweep reads the whole programme: more often would cost most of the run;
# a partner's staggered reminder and the retries simply come on the following days.)
SWEEPS_UTC = ((18, 30),)
# staff end a pair that has never talked after this many weeks (its reminders stop)
GIVE_UP_WEEKS = 8
# every simulated pair says so in its notes: how `scripts/run.sh` knows the demo is loaded
DEMO_NOTE = "synthetic demo pair (peerline simulate-cohort)"

# the trials' curve: accepted calls a pair-month and minutes a call, month 1 and month 6
CALLS_MONTH_1, CALLS_MONTH_6 = 2.4, 0.8
MINUTES_MONTH_1, MINUTES_MONTH_6 = 15.6, 6.8
NEVER_ENGAGE = 0.3
ONE_SIDED = 0.25
P_ACCEPT = 0.72


def fictional_number(index: int) -> str:
    """The index-th fictional number: +1 AAA 555-01xx, 100 to an area code."""
    if index >= 100 * len(AREA_CODES):
        raise ValueError("no more fictional numbers")
    return f"+1{AREA_CODES[index // 100]}5550{100 + index % 100}"


MAX_PAIRS = 100 * len(AREA_CODES) // 2


@dataclass(frozen=True)
class TruthCall:
    """One call the simulation made, and what it meant to come of it."""

    pair: int  # 1..N in the order the pairs were made
    week: int  # 1 = the first week after pairing
    initiator_side: str  # "a" = the pair's lower participant id
    outcome: str  # the /calls vocabulary
    is_contact: bool
    talk_seconds: int
    kind: str  # peer or reminder
    accepted: bool
    message: bool
    at: str  # when the call began (simulated), ISO 8601
    month: int  # 1 = the first 30 days after pairing (the engagement measures' months)
    # a reminder call picked up by the participant in person, not by a machine (false for
    # peer calls: the caller is always there)
    answered: bool
    # the partner's phone was rung: a peer call outside the partner's quiet hours, or a
    # reminder call on which the participant pressed 1 to be put through
    bridged: bool


@dataclass(frozen=True)
class TruthPair:
    """One pair the simulation made: when it was made and ended, and until when it was watched.

    Written beside the calls (`pairs_file`), so that every figure that depends on time
    paired (shares of pair-weeks, the pilot's measure, messages per participant-week) can
    be computed from the truth alone.
    """

    pair: int
    paired_at: str  # ISO 8601
    ended_at: str | None  # staff ended a pair that never talked; None: still paired
    until: str  # the end of the simulation: the moment the figures are taken at


@dataclass
class SimClock:
    """The app's clock: wherever the simulation says it is."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Person:
    id: int
    phone: str
    zone: str
    quiet: bool


@dataclass
class PairPlan:
    index: int
    id: int
    a: Person
    b: Person
    started: datetime
    engages: bool
    share_a: float  # share of the pair's calls that a starts
    vigour: float  # this pair's calls relative to the cohort's curve
    talked: bool = False  # an accepted call so far
    ended: datetime | None = None

    def side_of(self, person_id: int) -> str:
        return "a" if person_id == self.a.id else "b"


@dataclass(frozen=True)
class Event:
    """A moment in the week: a reminder sweep (no pair), or a pair's call."""

    at: datetime
    plan: PairPlan | None = None
    a_calls: bool = True
    quiet: bool = False


@dataclass
class Report:
    pairs: int = 0
    weeks: int = 0
    calls: int = 0
    contacts: int = 0
    reminders: int = 0
    messages: int = 0
    truth: list[TruthCall] = field(default_factory=list)
    pair_truth: list[TruthPair] = field(default_factory=list)
    requests: int = 0  # signed requests to the service (webhooks and callbacks)
    sweep_seconds: float = 0.0  # wall time spent in the reminder sweeps

    def __str__(self) -> str:
        return (
            f"{self.pairs} pairs over {self.weeks} weeks: {self.calls} calls "
            f"({self.contacts} contacts, {self.reminders} reminder calls), {self.messages} messages, "
            f"{self.requests} requests"
        )


def month_of(week: int) -> int:
    """Month since pairing (30 days) that a pair-week mostly falls in."""
    return min(6, 1 + ((week - 1) * 7 + 3) // 30)


def curve(first: float, sixth: float, month: int) -> float:
    """Geometric decay from month 1 to month 6, flat after."""
    return float(first * (sixth / first) ** ((min(month, 6) - 1) / 5))


class Cohort:
    """Plays one synthetic programme against an app running in this process."""

    def __init__(self, app: FastAPI, client: PhoneLine, *, seed: int, start: datetime) -> None:
        self.app = app
        self.ctx = app.state.context
        self.settings: Settings = self.ctx.settings
        self.clock = SimClock(start)
        self.ctx.clock = self.clock
        self.rng = random.Random(seed)
        self.start = start
        self.phone = Telephone(
            client,
            public_base_url=self.settings.public_base_url,
            target_base_url="http://testserver",
            auth_token=self.settings.twilio_auth_token,
            programme_number=self.settings.programme_number,
        )
        # the telephone waits for the service's dialer after every request it sends: the
        # dialer makes its REST requests then, on this thread (Dialer.run_when_waited)
        dialer_for(app).run_when_waited()
        # the sweep's REST requests go to the same fake that the telephone plays
        self.rest = rest_client(
            self.phone.fake, self.settings.twilio_account_sid, self.settings.twilio_auth_token
        )
        self.min_contact = int(self.ctx.policy.min_contact_seconds)
        self.pairs: list[PairPlan] = []
        self.by_phone: dict[str, tuple[PairPlan, Person]] = {}
        self.report = Report()

    # ------------------------------------------------------------ enrolment

    def enrol(self, pairs: int) -> None:
        from app.services import participants

        with self.app.state.sessionmaker() as db:
            for index in range(1, pairs + 1):
                people: list[Person] = []
                for side in range(2):
                    number = fictional_number(2 * (index - 1) + side)
                    zone_ = self.rng.choice(ZONES)
                    quiet = self.rng.random() < 0.3
                    person = participants.enrol(
                        db,
                        self.ctx.vault,
                        name=f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}.",
                        phone=number,
                        timezone=zone_,
                        quiet_hours=QUIET_HOURS if quiet else None,
                        now=self.clock(),
                    )
                    people.append(Person(person.id, number, zone_, quiet))
                a, b = people
                pair = participants.make_pair(db, a.id, b.id, now=self.clock(), notes=DEMO_NOTE)
                one_sided = self.rng.random() < ONE_SIDED
                plan = PairPlan(
                    index=index,
                    id=pair.id,
                    a=a,
                    b=b,
                    started=self.clock(),
                    engages=self.rng.random() >= NEVER_ENGAGE,
                    share_a=self.rng.choice((0.1, 0.9)) if one_sided else self.rng.uniform(0.35, 0.65),
                    vigour=self.rng.uniform(0.5, 1.5),
                )
                self.pairs.append(plan)
                self.by_phone[a.phone] = (plan, a)
                self.by_phone[b.phone] = (plan, b)
            db.commit()
        self.report.pairs = pairs

    # ------------------------------------------------------------ the weeks

    def run(self, weeks: int) -> Report:
        self.report.weeks = weeks
        for week in range(1, weeks + 1):
            if week == GIVE_UP_WEEKS + 1:
                self._end_silent_pairs(self.start + GIVE_UP_WEEKS * WEEK)
            for event in self._week_events(week):
                self.clock.now = event.at
                if event.plan is None:
                    self._sweep()
                else:
                    self._peer_call(event.plan, event.at, a_calls=event.a_calls, quiet=event.quiet)
        self.clock.now = until = self.start + weeks * WEEK
        self.report.pair_truth = [
            TruthPair(
                pair=plan.index,
                paired_at=plan.started.isoformat(),
                ended_at=plan.ended.isoformat() if plan.ended is not None else None,
                until=until.isoformat(),
            )
            for plan in self.pairs
        ]
        return self.report

    def _end_silent_pairs(self, moment: datetime) -> None:
        """Staff end the pairs that never talked: as a programme would, and their weekly
        reminders (most of a long simulation's calls) stop."""
        from app.models import Pair
        from app.services import participants

        self.clock.now = moment
        with self.app.state.sessionmaker() as db:
            for plan in self.pairs:
                if not plan.talked:
                    pair = db.get(Pair, plan.id)
                    assert pair is not None
                    participants.end_pair(db, pair, now=moment)
                    plan.ended = moment
            db.commit()

    def _week_events(self, week: int) -> list[Event]:
        begins = self.start + (week - 1) * WEEK
        events: list[Event] = []
        for day in range(7):
            midnight = begins + timedelta(days=day)
            for hour, minute in SWEEPS_UTC:
                events.append(Event(midnight.replace(hour=hour, minute=minute)))
        month = month_of(week)
        for plan in self.pairs:
            if plan.ended is not None:
                continue
            if plan.engages:
                accepted_a_week = curve(CALLS_MONTH_1, CALLS_MONTH_6, month) * plan.vigour * 7 / 30
                attempts = self._poisson(accepted_a_week / P_ACCEPT)
            else:
                attempts = self._poisson(0.12)
            # at most one call a pair a day, so one pair's calls never overlap
            for day in sorted(self.rng.sample(range(7), min(attempts, 7))):
                a_calls = self.rng.random() < plan.share_a
                partner = plan.b if a_calls else plan.a
                midnight = begins + timedelta(days=day)
                if partner.quiet and self.rng.random() < 0.12:
                    # the caller forgot the partner's quiet hours: 07:15 the partner's time,
                    # before anything else that day (sweeps and other calls come later)
                    local = midnight.astimezone(ZoneInfo(partner.zone)).replace(hour=7, minute=15)
                    local = local if local.date() == midnight.date() else local + timedelta(days=1)
                    moment = local.astimezone(UTC)
                    events.append(Event(moment, plan, a_calls=a_calls, quiet=True))
                    continue
                hour = self.rng.randrange(*PEER_HOURS_UTC)
                moment = midnight.replace(hour=hour, minute=self.rng.randrange(0, 50))
                events.append(Event(moment, plan, a_calls=a_calls))
        events.sort(key=lambda event: (event.at, event.plan is not None))
        return events

    def _poisson(self, mean: float) -> int:
        limit, k, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            k += 1
            product *= self.rng.random()
        return k

    def _talk_seconds(self, week: int) -> int:
        if self.rng.random() < 0.08:
            return self.rng.randint(15, self.min_contact - 5) if self.min_contact > 20 else 10
        mean = curve(MINUTES_MONTH_1, MINUTES_MONTH_6, month_of(week)) * 60
        sigma = 0.6
        return max(
            self.min_contact, round(self.rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma))
        )

    def _week_of(self, plan: PairPlan, moment: datetime) -> int:
        return (moment - plan.started) // WEEK + 1

    # ------------------------------------------------------------ a peer call

    def _peer_call(self, plan: PairPlan, moment: datetime, *, a_calls: bool, quiet: bool) -> None:
        caller = plan.a if a_calls else plan.b
        week = self._week_of(plan, moment)
        roll = self.rng.random()
        if quiet:
            outcome, accepted = "quiet_hours", False
        elif not plan.engages or roll < 0.28:
            outcome = self.rng.choice(("no_answer", "no_answer", "declined", "busy", "machine"))
            accepted = False
        else:
            outcome, accepted = "accepted", True
        talk = self._talk_seconds(week) if accepted else 0
        leaves_message = not accepted and self.rng.random() < 0.2
        caller_party = Scripted(
            ["1"] if leaves_message else [],
            talk_seconds=talk,
            ends=HANGS_UP,
            message_seconds=self.rng.randint(10, 60) if leaves_message else None,
        )
        partner_party = {
            "no_answer": Scripted(answers=False),
            "declined": Scripted(["h"]),
            "busy": Scripted(busy=True),
            "machine": Scripted(answered_by=AnsweredBy.MACHINE_END_BEEP),
            "quiet_hours": Scripted(answers=False),
            "accepted": Scripted(["1"], message_seconds=None),
        }[outcome]
        from_number = caller.phone
        if self.rng.random() < 0.05:
            # calling from elsewhere: identified by the home number keyed in
            from_number = "anonymous"
            caller_party.keys_to_press.insert(0, caller.phone[2:] + "#")
        self._play_in(from_number, caller_party, partner_party, moment)
        final = {"machine": "no_answer", "accepted": None}.get(outcome, outcome)
        self._write(
            plan,
            moment,
            kind="peer",
            initiator=caller.id,
            outcome=final or ("contact" if talk >= self.min_contact else "short"),
            accepted=accepted,
            talk=talk,
            message=leaves_message,
            answered=False,
            bridged=not quiet,
        )

    def _play_in(self, from_number: str, caller: Scripted, partner: Scripted, moment: datetime) -> CallRecord:
        # Telephone.call, with the legs' clocks at the simulated moment (the callbacks'
        # Timestamps are what the service measures talk time from)
        record = CallRecord(new_sid())
        exchange = Exchange(self.phone, record, partner)
        exchange.now = moment.timestamp()
        exchange.dial_in(from_number, caller, "/twilio/voice", {}, final_status=True)
        exchange.run()
        self._forget_placed()
        return record

    # ------------------------------------------------------------ reminders

    def _sweep(self) -> None:
        from app.services import sweep
        from ivr.flow import Urls

        began = time.perf_counter()
        sweep.sweep(
            self.app.state.sessionmaker,
            self.ctx.vault,
            self.rest,
            now=self.clock(),
            policy=self.ctx.policy,
            urls=Urls(self.settings.public_base_url),
            programme_number=self.settings.programme_number,
        )
        self.report.sweep_seconds += time.perf_counter() - began
        # everything placed since the fake was last cleared is a reminder (partner legs of
        # earlier calls were cleared when their calls ended)
        with self.phone.fake.lock:
            placed = list(self.phone.fake.calls)
        for call in placed:
            self._answer_reminder(call)
        self._forget_placed()

    def _forget_placed(self) -> None:
        # the fake keeps every call it placed and looks them up one by one: keep it short
        with self.phone.fake.lock:
            self.phone.fake.calls.clear()

    def _answer_reminder(self, call: PlacedCall) -> None:
        plan, person = self.by_phone[call.to]
        moment = self.clock()
        week = self._week_of(plan, moment)
        roll = self.rng.random()
        partner = Scripted(answers=False)
        talk, accepted, unanswered = 0, False, CallStatus.NO_ANSWER
        answered = bridged = False
        if roll < 0.2:
            callee, outcome = Scripted(answers=False), "no_answer"
        elif roll < 0.25:
            callee, outcome, unanswered = Scripted(answers=False), "busy", CallStatus.BUSY
        elif roll < 0.35:
            callee, outcome = Scripted(answered_by=AnsweredBy.MACHINE_END_BEEP), "no_answer"
        elif not plan.engages or roll < 0.7:
            callee, outcome = Scripted([], message_seconds=None), "declined"
            answered = True
        else:
            # "press 1 to talk now": the partner is rung and may take it
            answered = bridged = True
            if self.rng.random() < 0.75:
                accepted, talk = True, self._talk_seconds(week)
                partner = Scripted(["1"], message_seconds=None)
                outcome = "contact" if talk >= self.min_contact else "short"
            else:
                outcome = "no_answer"
            callee = Scripted(["1"], talk_seconds=talk, ends=HANGS_UP, message_seconds=None)
        record = CallRecord(call.sid)
        exchange = Exchange(self.phone, record, partner)
        exchange.now = moment.timestamp()
        exchange.ring_out(call, callee, answered_by=callee.answered_by, unanswered=unanswered)
        exchange.run()
        self._write(
            plan,
            moment,
            kind="reminder",
            initiator=person.id,
            outcome=outcome,
            accepted=accepted,
            talk=talk,
            message=False,
            answered=answered,
            bridged=bridged,
        )

    # ------------------------------------------------------------ the truth

    def _write(
        self,
        plan: PairPlan,
        moment: datetime,
        *,
        kind: str,
        initiator: int,
        outcome: str,
        accepted: bool,
        talk: int,
        message: bool,
        answered: bool,
        bridged: bool,
    ) -> None:
        contact = outcome == "contact"
        plan.talked = plan.talked or accepted
        self.report.truth.append(
            TruthCall(
                pair=plan.index,
                week=self._week_of(plan, moment),
                initiator_side=plan.side_of(initiator),
                outcome=outcome,
                is_contact=contact,
                talk_seconds=talk if accepted else 0,
                kind=kind,
                accepted=accepted,
                message=message,
                at=moment.isoformat(),
                month=(moment - plan.started) // MONTH + 1,
                answered=answered,
                bridged=bridged,
            )
        )
        self.report.calls += 1
        self.report.contacts += contact
        self.report.reminders += kind == "reminder"
        self.report.messages += message


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Thousands of calls: the service's own INFO lines are not news here."""
    names = ("app", "ivr", "httpx", "twilio", "peerline")
    old = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in old.items():
            logging.getLogger(name).setLevel(level)


def default_start(weeks: int, now: datetime | None = None) -> datetime:
    """Pairs made `weeks` weeks before today (midnight UTC), so the programme is current."""
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - weeks * WEEK


def simulate(
    settings: Settings,
    *,
    pairs: int,
    weeks: int,
    seed: int,
    start: datetime | None = None,
    truth: Path | None = None,
) -> Report:
    """Enrol `pairs` pairs into settings.database_url and play `weeks` weeks of calls."""
    from app.main import create_app

    if not 1 <= pairs <= MAX_PAIRS:
        raise ValueError(f"--pairs must be between 1 and {MAX_PAIRS} (fictional numbers run out)")
    if weeks < 1:
        raise ValueError("--weeks must be at least 1")
    begin = start or default_start(weeks)
    app = create_app(settings.model_copy(update={"scheduler_enabled": False}))
    try:
        # no lifespan: it only starts the scheduler, and the simulation sweeps itself
        with _quiet_logs(), DirectClient(app) as client:
            cohort = Cohort(app, client, seed=seed, start=begin)
            cohort.enrol(pairs)
            report = cohort.run(weeks)
            report.requests = client.requests
            app.state.context.clock = cohort.clock
    finally:
        app.state.engine.dispose()
    if truth is not None:
        write_truth(truth, report.truth, report.pair_truth)
    return report


def pairs_file(truth: Path) -> Path:
    """Where the pairs of a truth file are written: truth.jsonl -> truth.pairs.jsonl."""
    return truth.with_name(f"{truth.stem}.pairs{truth.suffix or '.jsonl'}")


def write_truth(path: Path, calls: list[TruthCall], pairs: list[TruthPair] | None = None) -> None:
    """One JSON line per call to `path`; the pairs, one a line, to pairs_file(path)."""
    with path.open("w") as out:
        out.writelines(json.dumps(asdict(call)) + "\n" for call in calls)
    if pairs is not None:
        with pairs_file(path).open("w") as out:
            out.writelines(json.dumps(asdict(pair)) + "\n" for pair in pairs)


def read_truth(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_truth_pairs(path: Path) -> list[dict[str, Any]]:
    """The pairs written beside the truth file `path`."""
    return read_truth(pairs_file(path))
