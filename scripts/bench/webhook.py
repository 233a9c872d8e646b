"""Webhook speed under load: the full path against a bare app, concurrent and open loop.

Servers (each `uvicorn`, one worker, no access log, same settings):
- `bare`: FastAPI parsing the form and answering the same TwiML as a constant;
- `bare+write`: the same plus one committed INSERT through Peerline's engine settings;
- `peerline`: the real service; signed `POST /twilio/voice` from a known caller (signature,
  caller by blind index, pair and partner, missed-call count, call row written and
  committed, TwiML with `<Dial>`).

Closed loop: `--connections` keep-alive connections (32), rounds alternating between the
servers so noise hits all alike. CPU per request is the server process's own CPU time
(user + system, from /proc) over the requests it answered. Open loop: `--rate` signed
requests a second (200) for `--open-seconds` (60) of whole calls' mixed steps (inbound,
whisper, whisper answer, conference joins, the caller's dial action, both legs' final
status), latency counted from the moment each request was due.

    .venv/bin/python scripts/bench/webhook.py [--rounds 4] [--requests 2000] [--connections 32]
        [--database-url URL] [--open-seconds 60] [--rate 200] [--label TEXT] [--write-docs]

`--write-docs` puts the run's table into docs/performance.md (between the bench's markers),
as one more row group labelled `--label` (e.g. the commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench import load  # noqa: E402

PY = sys.executable
TOKEN = "bench-auth-token"
SECRET = "bench-secret-key-bench-secret-key-bench"
PROGRAMME = "+18005550100"
# fictional numbers only: 555-0101 to 555-0199 in a few area codes
AREAS = ("617", "212", "312", "415", "503", "206")
DOCS = ROOT / "docs" / "performance.md"
# the first hundred pairs' partners are busy, the next hundred are rung, the rest make calls
# in the open loop; a hundred callers each, so no one caller's history grows unrealistically
BUSY_PAIRS = RUNG_PAIRS = 100
BEGIN_MARK = "<!-- webhook-bench:begin -->"
END_MARK = "<!-- webhook-bench:end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(400):
        try:
            httpx.post(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"server at {url} did not start")


QUIET_ONE_WORKER = ("--log-level", "warning", "--no-access-log", "--workers", "1")


def serve(module: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port), *QUIET_ONE_WORKER],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL processes (0 where there are none): the
    database's share of a request, which the server process's own figure leaves out."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(proc.name))
        except OSError:
            continue  # a backend that ended meanwhile
    return total


def numbers(pairs: int) -> list[tuple[str, str]]:
    every = [f"+1{area}555{n:04d}" for area in AREAS for n in range(101, 200)]
    if 2 * pairs > len(every):
        raise SystemExit(f"at most {len(every) // 2} pairs of fictional numbers")
    return [(every[2 * i], every[2 * i + 1]) for i in range(pairs)]


def set_up(url: str, pairs: int) -> list[tuple[str, str]]:
    """A migrated database with `pairs` active pairs; the first caller is +16175550101."""
    from app.crypto import PhoneVault
    from app.db import make_engine, make_sessionmaker
    from app.migrate import upgrade
    from app.models import Call
    from app.services import participants
    from ivr.vocab import CallKind, Outcome

    upgrade(url)
    vault = PhoneVault.from_secret(SECRET)
    made = numbers(pairs)
    now = datetime.now(UTC)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        for i, (a, b) in enumerate(made):
            people = [
                participants.enrol(
                    db, vault, name=f"P{2 * i + k}", phone=phone, timezone="UTC", quiet_hours=None, now=now
                )
                for k, phone in enumerate((a, b))
            ]
            db.flush()
            participants.make_pair(db, people[0].id, people[1].id, now=now)
            if i < BUSY_PAIRS:
                # these pairs' partners are on a call of their own (for three hours, as far
                # as the service knows): the callers' calls take every step of the full
                # path but ring nobody, so no partner's leg is placed after the answer
                db.add(
                    Call(
                        twilio_call_sid=f"CA{i:032x}",
                        kind=CallKind.PEER,
                        initiator_id=people[1].id,
                        started_at=now,
                        outcome=Outcome.IN_PROGRESS,
                    )
                )
        db.commit()
    engine.dispose()
    return made


def drop_postgresql(url: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_postgresql(server: str) -> str:
    """A new, empty database on that server for this run (the bench enrols fixed numbers)."""
    from sqlalchemy import create_engine, make_url, text

    name = f"peerline_bench_{secrets.token_hex(4)}"
    admin = create_engine(make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


# ---------------------------------------------------------------- closed loop


def inbound_requests(base: str, host: str, n: int, callers: list[str]) -> Iterator[bytes]:
    validator = RequestValidator(TOKEN)
    # signed before the clock starts: the client's HMAC is not the server's time
    built = [
        load.signed_request(
            validator,
            base,
            host,
            "/twilio/voice",
            {
                "CallSid": "CA" + secrets.token_hex(16),
                "From": callers[i % len(callers)],
                "To": PROGRAMME,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "AccountSid": "AC" + "0" * 32,
            },
        )
        for i in range(n)
    ]
    return iter(built)


class Answers:
    """What the full path answered: the partner rung (`<Dial>`) or on another call."""

    def __init__(self) -> None:
        self.rung = self.busy = self.other = 0

    def __call__(self, answer: load.Answer) -> bool:
        if answer.status == 200 and b"<Dial" in answer.body:
            self.rung += 1
        elif answer.status == 200 and b"another call" in answer.body:
            self.busy += 1
        else:
            self.other += 1
            return False
        return True


@dataclass
class Figures:
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    db_cpu: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000 if len(self.latencies) > 1 else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.requests * 1000 if self.requests else 0.0

    @property
    def db_cpu_ms(self) -> float:
        return self.db_cpu / self.requests * 1000 if self.requests else 0.0


def closed_round(
    port: int, pid: int, n: int, connections: int, callers: list[str], figures: Figures, answers: Answers
) -> None:
    host = f"127.0.0.1:{port}"
    requests = inbound_requests(f"http://{host}", host, n, callers)
    cpu0, db0 = cpu_seconds(pid), postgres_cpu_seconds()
    result = asyncio.run(
        load.closed_loop("127.0.0.1", port, requests, connections=connections, check=answers)
    )
    figures.cpu += cpu_seconds(pid) - cpu0
    figures.db_cpu += postgres_cpu_seconds() - db0
    figures.requests += len(result.latencies)
    figures.seconds += result.elapsed
    figures.errors += result.errors
    figures.latencies += result.latencies


# ---------------------------------------------------------------- open loop

_ROOM = re.compile(rb"room=(room-[0-9a-f]{24})")


class Calls:
    """Whole calls, step by step; a call's next step is sent once its last one is answered."""

    def __init__(self, base: str, host: str, pairs: list[tuple[str, str]]) -> None:
        self.base, self.host = base, host
        self.validator = RequestValidator(TOKEN)
        self.free = list(pairs)  # a pair is busy while one of its calls is going on
        self.ready: list[tuple[bytes, load.Check]] = []
        self.calls = 0
        self.unexpected = 0
        self.failed: Counter[str] = Counter()

    def _req(self, path: str, form: dict[str, str]) -> bytes:
        return load.signed_request(self.validator, self.base, self.host, path, form)

    async def next(self) -> tuple[bytes, load.Check] | None:
        if self.ready:
            return self.ready.pop(0)
        if not self.free:
            return None
        return self._start(self.free.pop(0))

    def _start(self, pair: tuple[str, str]) -> tuple[bytes, load.Check]:
        self.calls += 1
        caller, partner = "CA" + secrets.token_hex(16), "CA" + secrets.token_hex(16)
        data = self._req(
            "/twilio/voice",
            {
                "CallSid": caller,
                "From": pair[0],
                "To": PROGRAMME,
                "CallStatus": "ringing",
                "Direction": "inbound",
            },
        )

        def answered(answer: load.Answer) -> bool:
            found = _ROOM.search(answer.body)
            if answer.status != 200:
                self.failed[f"/twilio/voice {answer.status}"] += 1
                self.free.append(pair)
                return False
            if found is None:
                self.unexpected += 1  # e.g. the partner still counted as on an earlier call
                self.ready.append(self._final(caller, None, pair))
                return True
            self._steps(caller, partner, found.group(1).decode(), pair)
            return True

        return data, answered

    def _final(self, sid: str, room: str | None, pair: tuple[str, str] | None) -> tuple[bytes, load.Check]:
        path = "/twilio/status" + (f"?room={room}" if room else "")
        data = self._req(path, {"CallSid": sid, "CallStatus": "completed", "CallDuration": "95"})

        def done(answer: load.Answer) -> bool:
            if pair is not None:
                self.free.append(pair)
            ok = answer.status == 200 and b"<Response" in answer.body
            if not ok:
                self.failed[f"/twilio/status {answer.status}"] += 1
            return ok

        return data, done

    def _steps(self, caller: str, partner: str, room: str, pair: tuple[str, str]) -> None:
        stamp = "Mon, 23 Nov 2026 12:00:0{} +0000"
        steps = [
            (
                f"/twilio/voice/whisper?room={room}",
                {"CallSid": partner, "AnsweredBy": "human", "CallStatus": "in-progress"},
            ),
            (
                f"/twilio/voice/whisper-answer?room={room}",
                {"CallSid": partner, "Digits": "1", "CallStatus": "in-progress"},
            ),
            (
                "/twilio/conference",
                {
                    "FriendlyName": room,
                    "ConferenceSid": "CF" + room[5:] + "0" * 8,
                    "CallSid": caller,
                    "StatusCallbackEvent": "participant-join",
                    "SequenceNumber": "1",
                    "Timestamp": stamp.format(1),
                },
            ),
            (
                "/twilio/conference",
                {
                    "FriendlyName": room,
                    "ConferenceSid": "CF" + room[5:] + "0" * 8,
                    "CallSid": partner,
                    "StatusCallbackEvent": "participant-join",
                    "SequenceNumber": "2",
                    "Timestamp": stamp.format(2),
                },
            ),
            (
                f"/twilio/voice/stepped-out?room={room}",
                {"CallSid": caller, "DialCallStatus": "answered", "CallStatus": "in-progress"},
            ),
        ]
        chain: list[tuple[bytes, load.Check]] = []
        for path, form in steps:
            chain.append((self._req(path, form), self._expect(path.split("?")[0])))
        chain.append(self._final(partner, room, None))
        chain.append(self._final(caller, None, pair))
        self._chain(chain)

    def _expect(self, step: str) -> load.Check:
        def check(answer: load.Answer) -> bool:
            ok = answer.status == 200 and b"<Response" in answer.body and b"sorry" not in answer.body.lower()
            if not ok:
                self.failed[f"{step} {answer.status}"] += 1
            return ok

        return check

    def _chain(self, chain: list[tuple[bytes, load.Check]]) -> None:
        if not chain:
            return
        data, check = chain[0]

        def then(answer: load.Answer) -> bool:
            ok = check(answer)
            self._chain(chain[1:])
            return ok

        self.ready.append((data, then))


class Inbound:
    """Open loop of inbound calls only, from callers whose partners are on another call:
    the surge of a reminder wave answered at once, without the partners' legs."""

    def __init__(self, base: str, host: str, callers: list[str]) -> None:
        self.base, self.host, self.callers = base, host, callers
        self.validator = RequestValidator(TOKEN)
        self.sent = 0
        self.answers = Answers()

    async def next(self) -> tuple[bytes, load.Check] | None:
        self.sent += 1
        form = {
            "CallSid": "CA" + secrets.token_hex(16),
            "From": self.callers[self.sent % len(self.callers)],
            "To": PROGRAMME,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        return load.signed_request(self.validator, self.base, self.host, "/twilio/voice", form), self.answers


def open_inbound_round(port: int, pid: int, callers: list[str], rate: float, seconds: float) -> Figures:
    host = f"127.0.0.1:{port}"
    inbound = Inbound(f"http://{host}", host, callers)
    cpu0 = cpu_seconds(pid)
    result = asyncio.run(load.open_loop("127.0.0.1", port, inbound.next, rate=rate, seconds=seconds))
    return Figures(
        len(result.latencies), result.elapsed, cpu_seconds(pid) - cpu0, result.errors, result.latencies
    )


def open_round(
    port: int, pid: int, pairs: list[tuple[str, str]], rate: float, seconds: float
) -> tuple[Figures, Calls, load.Result]:
    host = f"127.0.0.1:{port}"
    calls = Calls(f"http://{host}", host, pairs)
    cpu0 = cpu_seconds(pid)
    result = asyncio.run(load.open_loop("127.0.0.1", port, calls.next, rate=rate, seconds=seconds))
    figures = Figures(
        len(result.latencies), result.elapsed, cpu_seconds(pid) - cpu0, result.errors, result.latencies
    )
    return figures, calls, result


# ---------------------------------------------------------------- the run


def row(label: str, name: str, f: Figures, bare: Figures | None) -> str:
    ratio = f"{f.rps / bare.rps:.2f}×" if bare and bare is not f else "1×"
    tail = f"{f.pct(99) / bare.pct(99):.1f}×" if bare and bare is not f else "1×"
    return (
        f"| {label} | {name} | {f.rps:,.0f} | {ratio} | {f.pct(50):.1f} | {f.pct(99):.1f} | {tail} "
        f"| {f.cpu_ms:.2f} | {f.errors} |"
    )


HEADER = (
    "| commit | variant | req/s | × bare | p50 ms | p99 ms | p99 × bare | CPU ms/req | errors |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def write_docs(lines: list[str]) -> None:
    text = DOCS.read_text()
    if BEGIN_MARK not in text:
        raise SystemExit(f"{DOCS} has no {BEGIN_MARK} marker")
    head, rest = text.split(BEGIN_MARK, 1)
    body, tail = rest.split(END_MARK, 1)
    kept = [
        line
        for line in body.strip().splitlines()
        if line.startswith("|") and not line.startswith(("| commit", "|---"))
    ]
    table = "\n".join([HEADER, *kept, *lines])
    DOCS.write_text(f"{head}{BEGIN_MARK}\n{table}\n{END_MARK}{tail}")


def main() -> None:
    try:  # the client's own overhead, kept small
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url")
    parser.add_argument("--pairs", type=int, default=290)
    parser.add_argument("--open-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sqlite-synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--only",
        default="",
        help="closed loop: only these variants, comma-separated (bare always runs: the ratios need it)",
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="peerline-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    if url.startswith("postgresql"):
        url = fresh_postgresql(url)
    peer_port, bare_port, write_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{peer_port}",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SECRET_KEY": SECRET,
        "TWILIO_PHONE_NUMBER": PROGRAMME,
        "SCHEDULER_ENABLED": "false",
        # no Twilio account: the partner's leg is recorded as not placed, with no HTTP
        # request (a request to a fake would measure the fake and the HTTP client)
        "TWILIO_API_URL": "https://api.twilio.com",
        "SQLITE_SYNCHRONOUS": args.sqlite_synchronous,
        "PEERLINE_DEV_SECRETS": f"{tmp}/secrets.json",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(
        {k: env[k] for k in ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "PEERLINE_DEV_SECRETS", "SQLITE_SYNCHRONOUS")}
    )
    pairs = set_up(url, args.pairs)
    bare_db = f"sqlite:///{tmp}/bare.db" if url.startswith("sqlite") else url
    servers = {
        "peerline": (serve("app.main:app", peer_port, env), peer_port),
        "bare": (serve("scripts.bench.bare_app:app", bare_port, env), bare_port),
        "bare+write": (
            serve("scripts.bench.bare_app:write_app", write_port, {**env, "BARE_DATABASE_URL": bare_db}),
            write_port,
        ),
    }
    try:
        for _, port in servers.values():
            wait_up(f"http://127.0.0.1:{port}/twilio/voice")
        # (figures' name, server, callers): the busy partner's caller, or a hundred callers
        # in turn, each of whose partner is rung
        ana = [a for a, _ in pairs[:BUSY_PAIRS]]
        rung = [a for a, _ in pairs[BUSY_PAIRS : BUSY_PAIRS + RUNG_PAIRS]]
        variants = [
            ("bare", "bare", ana),
            ("bare+write", "bare+write", ana),
            ("peerline", "peerline", ana),
            ("peerline rung", "peerline", rung),
        ]
        if args.only:
            wanted = {"bare", *(name.strip() for name in args.only.split(","))}
            variants = [v for v in variants if v[0] in wanted]
        figures = {name: Figures() for name, _, _ in variants}
        answers = {name: Answers() for name, _, _ in variants}
        for _, server, callers in variants:  # warm-up
            proc, port = servers[server]
            closed_round(port, proc.pid, 300, args.connections, callers, Figures(), Answers())
        for r in range(args.rounds):
            for name, server, callers in variants if r % 2 == 0 else list(reversed(variants)):
                proc, port = servers[server]
                closed_round(
                    port, proc.pid, args.requests, args.connections, callers, figures[name], answers[name]
                )
        surge = opened = None
        if args.open_seconds > 0:  # 0: the closed loop only (a quick A/B)
            surge = open_inbound_round(
                peer_port, servers["peerline"][0].pid, ana, args.rate, min(args.open_seconds, 30.0)
            )
            opened, calls, client = open_round(
                peer_port,
                servers["peerline"][0].pid,
                pairs[BUSY_PAIRS + RUNG_PAIRS :],
                args.rate,
                args.open_seconds,
            )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)
        if url.startswith("postgresql"):
            drop_postgresql(url)
    database = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    sync = f", synchronous={args.sqlite_synchronous}" if database == "SQLite" else ""
    label = args.label or "this run"
    bare = figures["bare"]
    names = {
        "bare": f"bare ({database}{sync}, {args.connections} conns)",
        "bare+write": "bare + one write",
        "peerline": "**full path** (partner on another call: no leg placed)",
        "peerline rung": "full path, partner rung (+ placing the leg after the answer)",
    }
    lines = [row(label, names[name], figures[name], bare) for name in names if name in figures]
    if opened is not None and surge is not None:
        lines += [
            row(label, f"open loop {args.rate:.0f}/s × {args.open_seconds:.0f} s, mixed steps", opened, None),
            row(
                label,
                f"open loop {args.rate:.0f}/s × {min(args.open_seconds, 30.0):.0f} s, inbound only (a surge)",
                surge,
                None,
            ),
        ]
    print(HEADER)
    print("\n".join(lines))
    if database == "PostgreSQL":
        print(
            "PostgreSQL's own CPU ms/req (all its processes, closed loop): "
            + ", ".join(f"{name} {f.db_cpu_ms:.2f}" for name, f in figures.items())
        )
    for name in ("peerline", "peerline rung"):
        if name in answers:
            a = answers[name]
            print(f"{name}: {a.rung} rung, {a.busy} partner on another call, {a.other} other answers")
    if opened is not None:
        print(
            f"open loop: {calls.calls} calls begun, {calls.unexpected} inbound without a room, "
            f"{client.late_starts} requests started late by the client, errors {opened.errors} "
            f"{dict(calls.failed)}, connections lost {client.lost}, sent again on a new connection "
            f"after the server closed a kept-alive one {client.retried}"
        )
    if args.write_docs:
        write_docs(lines)


if __name__ == "__main__":
    main()
