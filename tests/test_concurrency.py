"""Many calls at once on SQLite: write locks are taken up front, so nothing is 'database is locked'."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from app.db import make_engine
from app.main import create_app
from app.models import Base, Call, Pair
from app.services import participants
from app.settings import Settings
from app.simulator.fake_twilio import FakeTwilio
from app.simulator.telephone import Scripted, Telephone, in_process_client
from app.twilio.dialer import dialer_for
from tests.conftest import PROGRAMME_NUMBER, SECRET, FakeClock, ServerThread


def test_forty_calls_from_four_phones_at_once_are_all_recorded(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path}/busy.db"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    settings = Settings(
        database_url=url,
        public_base_url="http://127.0.0.1:1",
        twilio_auth_token="busy-token",
        twilio_phone_number=PROGRAMME_NUMBER,
        secret_key=SECRET,
        scheduler_enabled=False,
    )
    app = create_app(settings)
    app.state.context.clock = clock
    numbers = [f"+1617555{n:04d}" for n in range(160, 168)]
    with app.state.sessionmaker() as db:
        ids = [
            participants.enrol(
                db,
                app.state.context.vault,
                name=f"P{i}",
                phone=n,
                timezone="UTC",
                quiet_hours=None,
                now=clock(),
            ).id
            for i, n in enumerate(numbers)
        ]
        for a, b in zip(ids[::2], ids[1::2], strict=True):
            participants.make_pair(db, a, b, now=clock())
        db.commit()
    # the partner's legs are placed through a fake of Twilio's REST API in this process
    dialer_for(app).client = in_process_client(
        FakeTwilio(auth_token="busy-token"), settings.twilio_account_sid, "busy-token"
    )
    server = ServerThread(app)
    settings.public_base_url = server.url
    errors: list[BaseException] = []

    def caller(number: str) -> None:
        try:
            with httpx.Client(timeout=30) as http:
                phone = Telephone(
                    http,
                    public_base_url=server.url,
                    auth_token="busy-token",
                    programme_number=PROGRAMME_NUMBER,
                )
                for _ in range(10):
                    phone.call(number, Scripted(talk_seconds=120), Scripted(["1"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in numbers[::2]]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert not errors, errors[:1]
    with app.state.sessionmaker() as db:
        calls = list(db.query(Call))
        pairs = list(db.query(Pair))
    app.state.engine.dispose()
    assert len(calls) == 40
    assert {c.outcome for c in calls} == {"contact"}
    assert {c.talk_seconds for c in calls} == {120}
    assert all(p.last_contact_at is not None for p in pairs)
