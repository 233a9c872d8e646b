"""Fixtures: every database test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from app.crypto import PhoneVault
from app.db import make_engine
from app.main import create_app
from app.models import Base, Call, Pair
from app.services import participants
from app.settings import Settings
from app.simulator.fake_twilio import FakeTwilio, create_fake_twilio
from app.simulator.telephone import Telephone

T = TypeVar("T")

# fictional numbers only (555-01xx)
ANA = "+16175550101"
BEA = "+16175550102"
CAL = "+16175550103"
DEE = "+16175550104"
STRANGER = "+16175550199"
ALL_TEST_NUMBERS = [ANA, BEA, CAL, DEE, STRANGER]
PUBLIC_BASE_URL = "https://peerline.example.org"
PROGRAMME_NUMBER = "+18005550100"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SECRET = "test-secret-key-that-is-long-enough-for-production-use"
SUPPORT = "+18005550177"

PG_URL = os.environ.get("TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


class LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text_ = self.format(record)
        except Exception:
            text_ = str(record.msg)
        self.lines.append(text_)


LOGS = LogCollector()
LOGS.setFormatter(logging.Formatter("%(name)s %(message)s"))


@pytest.fixture(scope="session", autouse=True)
def _no_phone_number_is_ever_logged() -> Iterator[None]:
    root = logging.getLogger()
    root.addHandler(LOGS)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(LOGS)
    root.setLevel(old_level)
    leaked = [line for line in LOGS.lines for n in ALL_TEST_NUMBERS if n[2:] in line.replace("-", "")]
    assert not leaked, f"phone numbers in logs: {leaked[:3]}"


@pytest.fixture(autouse=True)
def _quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production argon2id parameters cost ~60 ms a hash; tests make hundreds."""
    from argon2 import PasswordHasher

    from app.services import staff

    monkeypatch.setattr(staff, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


# Every PostgreSQL database the suite touches is one it created under a unique name and
# drops at the end: two runs on one server never collide, and no one else's data is touched.
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
_created: list[str] = []
_pg_engine: Engine | None = None


def _pg_admin() -> Engine:
    assert PG_URL
    return create_engine(Settings(database_url=PG_URL).database_url, isolation_level="AUTOCOMMIT")


def new_pg_database(purpose: str) -> str:
    """Create an empty database of this run's own and return its URL (dropped at session end)."""
    name = f"peerline_test_{RUN_ID}_{purpose}_{len(_created)}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    _created.append(name)
    return str(admin.url.set(database=name).render_as_string(hide_password=False))


@pytest.fixture(scope="session", autouse=True)
def _drop_created_databases() -> Iterator[None]:
    yield
    global _pg_engine
    if _pg_engine is not None:
        _pg_engine.dispose()
        _pg_engine = None
    if not _created:
        return
    admin = _pg_admin()
    with admin.connect() as conn:
        for name in _created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pg() -> Engine:
    global _pg_engine
    if _pg_engine is None:
        _pg_engine = create_engine(new_pg_database("main"))
        Base.metadata.create_all(_pg_engine)
    return _pg_engine


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/peerline.db"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        return url
    engine = _pg()
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return str(engine.url.render_as_string(hide_password=False))


def suite_settings(database_url: str, **changes: Any) -> Settings:
    """The suite's settings on a database; `changes` set or unset any of them."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_phone_number": PROGRAMME_NUMBER,
        "secret_key": SECRET,
        "scheduler_enabled": False,
        "support_phone_number": SUPPORT,
    }
    return Settings(**{**values, **changes})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return suite_settings(database_url)


@pytest.fixture
def clock() -> FakeClock:
    # a Tuesday, 15:00 in Boston
    return FakeClock(datetime(2026, 11, 17, 20, 0, tzinfo=UTC))


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> Iterator[FastAPI]:
    application = create_app(settings)
    application.state.context.clock = clock
    yield application
    application.state.deadline.shutdown()
    application.state.phone_engine.dispose()
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def phone(client: TestClient) -> Telephone:
    return Telephone(
        client,
        public_base_url=PUBLIC_BASE_URL,
        target_base_url="http://testserver",
        auth_token=AUTH_TOKEN,
        programme_number=PROGRAMME_NUMBER,
    )


class Programme:
    """Staff-side set-up and read-back; each operation in its own short transaction,
    so a test never holds SQLite's write lock while the service answers a call."""

    def __init__(self, app: FastAPI, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock
        self.vault: PhoneVault = app.state.context.vault

    def session(self) -> Session:
        session: Session = self.app.state.sessionmaker()
        return session

    def enrol(self, name: str, phone: str, tz: str = "America/New_York", quiet: str | None = None) -> int:
        with self.session() as s:
            person = participants.enrol(
                s, self.vault, name=name, phone=phone, timezone=tz, quiet_hours=quiet, now=self.clock()
            )
            s.commit()
            return person.id

    def pair(self, a: int, b: int) -> int:
        with self.session() as s:
            pair = participants.make_pair(s, a, b, now=self.clock())
            s.commit()
            return pair.id

    def end_pair(self, pair_id: int) -> None:
        with self.session() as s:
            pair = s.get(Pair, pair_id)
            assert pair is not None
            participants.end_pair(s, pair, now=self.clock())
            s.commit()

    def rows(self, model: type[T]) -> list[T]:
        with self.session() as s:
            found = list(s.scalars(select(model).order_by(model.id)))  # type: ignore[attr-defined]
            return found

    def call(self, sid: str) -> Call:
        with self.session() as s:
            call = s.scalar(select(Call).where(Call.twilio_call_sid == sid))
            assert call is not None, f"no call row for {sid}"
            return call

    def get(self, model: type[T], id_: int) -> T:
        with self.session() as s:
            row = s.get(model, id_)
            assert row is not None
            return row


@pytest.fixture
def programme(app: FastAPI, clock: FakeClock) -> Programme:
    return Programme(app, clock)


@pytest.fixture
def ana_and_bea(programme: Programme) -> tuple[int, int, int]:
    ana = programme.enrol("Ana", "(617) 555-0101")
    bea = programme.enrol("Bea", "617-555-0102", tz="America/Chicago")
    return ana, bea, programme.pair(ana, bea)


@pytest.fixture
def vault() -> PhoneVault:
    return PhoneVault.from_secret(SECRET)


# ---------------------------------------------------------------- a local fake of Twilio's Calls API


def reminder_hours_open_now(zone: str = "UTC") -> str:
    """A REMINDER_HOURS window open from an hour ago to six hours on in that zone: a test whose
    processes sweep by the real clock must not depend on the time of day ("00:00-23:59" is
    shut from 23:59 to midnight, and a sweep in that minute places nothing)."""
    local = datetime.now(ZoneInfo(zone))
    return f"{local - timedelta(hours=1):%H:00}-{local + timedelta(hours=6):%H:00}"


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it, so parallel runs never collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server for a test, on a free loopback port, stopped at the end."""

    def __init__(self, asgi: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(asgi, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def fake_twilio_server() -> Iterator[ServerThread]:
    server = ServerThread(create_fake_twilio(FakeTwilio()))
    yield server
    server.stop()


@pytest.fixture
def fake_twilio(fake_twilio_server: ServerThread) -> Iterator[FakeTwilio]:
    fake: FakeTwilio = fake_twilio_server.server.config.app.state.fake
    fake.calls.clear()
    fake.failures.clear()
    fake.on_call = None
    yield fake
    fake.on_call = None


# ---------------------------------------------------------------- staff and the admin API


class Staff:
    """Accounts of each role, and the bearer headers to act as them."""

    def __init__(self, app: FastAPI, clock: FakeClock) -> None:
        from app.services import staff

        self.app = app
        self.clock = clock
        self.users: dict[str, Any] = {}
        with app.state.sessionmaker() as s:
            for role in ("nurse", "staff", "admin"):
                self.users[role] = staff.create_user(
                    s,
                    email=f"{role}@clinic.example.org",
                    password=f"{role}-password-long",
                    role=role,
                    now=clock(),
                )
            s.commit()

    def __getitem__(self, role: str) -> dict[str, str]:
        """Bearer headers for that role, freshly signed at the test clock's now; {} for nobody."""
        user = self.users.get(role)
        if user is None:
            return {}
        return {"Authorization": f"Bearer {self.app.state.tokens.issue(user, self.clock())}"}


@pytest.fixture
def staff(app: FastAPI, clock: FakeClock) -> Staff:
    return Staff(app, clock)
