"""`peerline keys rotate`: callers are recognised before, during (half rotated, after a crash)
and after the rotation; a re-run finishes it; a server with only the old key no longer
recognises rotated numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.crypto import PhoneVault
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import Call, KeyedIdFailure, Participant
from app.services.keys import RotationError, check_new_secret, old_secrets, rotate
from app.settings import Settings
from app.simulator.telephone import Scripted, Telephone
from ivr import prompts
from tests.conftest import (
    ANA,
    AUTH_TOKEN,
    BEA,
    CAL,
    DEE,
    PROGRAMME_NUMBER,
    PUBLIC_BASE_URL,
    SECRET,
    STRANGER,
    FakeClock,
    Programme,
)

NEW_SECRET = "the-new-secret-key-for-numbers-0123456789-abcdef"
PEOPLE = {ANA: "Ana", BEA: "Bea", CAL: "Cal", DEE: "Dee"}


class Crash(Exception):
    pass


@contextmanager
def server(
    settings: Settings, clock: FakeClock, secret: str, previous: str | None = None
) -> Iterator[Telephone]:
    app = create_app(settings.model_copy(update={"secret_key": secret, "secret_key_previous": previous}))
    app.state.context.clock = clock
    with TestClient(app) as client:
        yield Telephone(
            client,
            public_base_url=PUBLIC_BASE_URL,
            target_base_url="http://testserver",
            auth_token=AUTH_TOKEN,
            programme_number=PROGRAMME_NUMBER,
        )
    app.state.engine.dispose()
    app.state.phone_engine.dispose()


def recognised(phone: Telephone) -> dict[str, bool]:
    """Who the service greets by name, calling from home."""
    found = {}
    for number, name in PEOPLE.items():
        caller = Scripted()
        phone.call(number, caller, Scripted(answers=False))
        found[name] = f"Hello, {name}" in caller.text
    return found


def keyed(phone: Telephone, digits: str) -> str:
    caller = Scripted([digits])
    phone.call("anonymous", caller, Scripted(answers=False))
    return caller.text


@pytest.fixture
def enrolled(programme: Programme) -> None:
    ids = {name: programme.enrol(name, number) for number, name in PEOPLE.items()}
    programme.pair(ids["Ana"], ids["Bea"])
    programme.pair(ids["Cal"], ids["Dee"])


def sessions(settings: Settings):  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    return engine, make_sessionmaker(engine)


def test_callers_are_recognised_before_during_and_after_a_rotation_that_crashed_midway(
    settings: Settings, clock: FakeClock, enrolled: None, phone: Telephone
) -> None:
    old, new = PhoneVault.from_secret(SECRET), PhoneVault.from_secret(NEW_SECRET)
    # before: history under the old key (participants' caller IDs, and a stranger's wrong tries)
    assert recognised(phone) == dict.fromkeys(PEOPLE.values(), True)
    phone.call(STRANGER, Scripted(["6175550188#", "6175550177#"]))
    engine, make_session = sessions(settings)

    def crash_after_two(phase: str, batch: int) -> None:
        if phase == "numbers" and batch == 2:
            raise Crash

    with pytest.raises(Crash):
        rotate(make_session, [old], new, batch_size=1, after_batch=crash_after_two)
    with make_session() as db:
        stored = [p.phone_ciphertext for p in db.scalars(select(Participant).order_by(Participant.id))]
    under_new = [new.decrypt_own(c) is not None for c in stored if c is not None]
    assert under_new == [True, True, False, False]  # half rotated

    # during: a server that reads with both keys, in either order, recognises everyone
    for secret, previous in ((SECRET, NEW_SECRET), (NEW_SECRET, SECRET)):
        with server(settings, clock, secret, previous) as during:
            assert recognised(during) == dict.fromkeys(PEOPLE.values(), True)
            assert "Hello, Bea" in keyed(during, "6175550102#")
            assert "Hello, Dee" in keyed(during, "6175550104#")

    # the re-run finishes the job, passing over what is done
    report = rotate(make_session, [old], new, batch_size=1)
    assert (report.numbers_rotated, report.numbers_already_new, report.numbers_unreadable) == (2, 2, 0)
    assert report.lockouts_deleted == 2  # the stranger's: not recomputable, only an hour's lockout
    again = rotate(make_session, [old], new, batch_size=1)
    assert (again.numbers_rotated, again.numbers_already_new, again.calls_mapped) == (0, 4, 0)

    with make_session() as db:
        people = list(db.scalars(select(Participant)))
        calls = list(db.scalars(select(Call)))
        failures = list(db.scalars(select(KeyedIdFailure)))
    assert all(new.decrypt_own(p.phone_ciphertext or b"") is not None for p in people)
    assert {p.phone_index for p in people} == {new.blind_index(n) for n in PEOPLE}
    participant_indexes = {new.blind_index(n) for n in PEOPLE} | {new.blind_index("withheld:anonymous")}
    assert {c.caller_index for c in calls} <= participant_indexes | {None}
    assert not any(c.caller_index == old.blind_index(ANA) for c in calls)
    assert failures == []
    engine.dispose()

    # after: the new key alone recognises everyone; the old key alone no one
    with server(settings, clock, NEW_SECRET) as after:
        assert recognised(after) == dict.fromkeys(PEOPLE.values(), True)
        assert "Hello, Bea" in keyed(after, "6175550102#")
    with server(settings, clock, SECRET) as stale:
        assert recognised(stale) == dict.fromkeys(PEOPLE.values(), False)
        assert prompts.NUMBER_NOT_FOUND in keyed(stale, "6175550102#")


def test_a_number_removed_while_the_rotation_runs_is_not_written_back(
    settings: Settings, enrolled: None, programme: Programme
) -> None:
    from app.services import participants

    old, new = PhoneVault.from_secret(SECRET), PhoneVault.from_secret(NEW_SECRET)
    engine, make_session = sessions(settings)

    def remove_bea(phase: str, batch: int) -> None:
        if phase == "numbers" and batch == 1:
            with programme.session() as s:
                bea = s.scalar(select(Participant).where(Participant.name == "Bea"))
                assert bea is not None
                participants.remove(s, PhoneVault.from_secret(SECRET), bea, now=programme.clock())
                s.commit()

    rotate(make_session, [old], new, batch_size=1, after_batch=remove_bea)
    with make_session() as db:
        bea = db.scalar(select(Participant).where(Participant.name == "Bea"))
    assert bea is not None and bea.phone_ciphertext is None and bea.phone_index is None
    engine.dispose()


def test_the_old_secrets_and_the_new_one_are_checked() -> None:
    assert old_secrets("a" * 40, None, "b" * 40) == ["a" * 40]
    # run with the servers' new environment: the old secret is the previous one
    assert old_secrets("b" * 40, "a" * 40, "b" * 40) == ["a" * 40]
    with pytest.raises(RotationError, match="SECRET_KEY_PREVIOUS"):
        old_secrets("b" * 40, None, "b" * 40)
    assert check_new_secret(f"  {'c' * 40}\n") == "c" * 40
    with pytest.raises(RotationError, match="at least 32"):
        check_new_secret("short\n")
    with pytest.raises(RotationError, match="one line"):
        check_new_secret("c" * 40 + "\n" + "d" * 40)


def test_the_command_rotates_and_says_what_to_do_next(
    settings: Settings, enrolled: None, tmp_path: Path
) -> None:
    peerline = str(Path(sys.executable).parent / "peerline")
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": SECRET,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    env.pop("SECRET_KEY_PREVIOUS", None)
    secret_file = tmp_path / "new-secret"

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [peerline, "keys", "rotate", *args],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = run("--new-secret-file", str(secret_file))
    assert (
        missing.returncode == 2
        and missing.stderr.strip().count("\n") == 0
        and "cannot read" in missing.stderr
    )
    secret_file.write_text("too-short\n")
    short = run("--new-secret-file", str(secret_file))
    assert short.returncode == 2 and "at least 32" in short.stderr

    secret_file.write_text(NEW_SECRET + "\n")
    done = run("--new-secret-file", str(secret_file))
    assert done.returncode == 0, done.stderr
    assert "4 numbers re-encrypted" in done.stdout and "set SECRET_KEY to the new secret" in done.stdout
    for number in (ANA, BEA, CAL, DEE):
        assert number[2:] not in done.stdout + done.stderr
    # with the servers' environment afterwards (new key, old as previous) it finds nothing left
    after = run("--new-secret-file", str(secret_file), SECRET_KEY=NEW_SECRET, SECRET_KEY_PREVIOUS=SECRET)
    assert after.returncode == 0 and "0 numbers re-encrypted, 4 already under the new key" in after.stdout
    same = run("--new-secret-file", str(secret_file), SECRET_KEY=NEW_SECRET)
    assert same.returncode == 2 and "SECRET_KEY_PREVIOUS" in same.stderr
