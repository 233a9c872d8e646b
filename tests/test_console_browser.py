"""The console in a real browser (Debian's Chromium through Playwright) against a live server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.db import make_engine
from app.main import create_app
from app.models import Base
from app.services import staff
from app.settings import Settings
from app.simulator.fake_twilio import FakeTwilio
from app.simulator.telephone import Scripted, Telephone
from tests.conftest import ANA, BEA, CAL, DEE, PROGRAMME_NUMBER, SECRET, FakeClock, ServerThread

CHROMIUM = "/usr/bin/chromium"
# a git-ignored build folder: running the tests never changes a tracked file;
# scripts/screenshots.sh copies them into docs/screenshots/ on purpose
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")

playwright = pytest.importorskip("playwright.sync_api")


class Live:
    def __init__(self, tmp: Path, fake_twilio_url: str) -> None:
        url = f"sqlite:///{tmp}/console.db"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        self.clock = FakeClock(datetime(2026, 11, 17, 20, 0, tzinfo=UTC))
        self.settings = Settings(
            database_url=url,
            public_base_url="http://127.0.0.1:1",
            twilio_auth_token="console-token",
            twilio_phone_number=PROGRAMME_NUMBER,
            secret_key=SECRET,
            scheduler_enabled=False,
            twilio_api_url=fake_twilio_url,
            console_timezone="America/New_York",
        )
        self.app: FastAPI = create_app(self.settings)
        self.app.state.context.clock = self.clock
        self.server = ServerThread(self.app)
        # Twilio signs the URL it was given: the public URL is this live server's
        self.settings.public_base_url = self.server.url
        with self.app.state.sessionmaker() as db:
            for role in ("nurse", "staff", "admin"):
                staff.create_user(
                    db,
                    email=f"{role}@clinic.example.org",
                    password=f"{role}-password-long",
                    role=role,
                    now=self.clock(),
                )
            db.commit()
        self.http = httpx.Client(timeout=10)
        self.phone = Telephone(
            self.http,
            public_base_url=self.server.url,
            auth_token="console-token",
            programme_number=PROGRAMME_NUMBER,
        )

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.app.state.engine.dispose()


@pytest.fixture
def live(tmp_path: Path, fake_twilio_server: ServerThread, fake_twilio: FakeTwilio) -> Iterator[Live]:
    server = Live(tmp_path, fake_twilio_server.url)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(5000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: object, live: Live, role: str) -> None:
    page.goto(f"{live.url}/console/login")  # type: ignore[attr-defined]
    page.get_by_label("Email").fill(f"{role}@clinic.example.org")  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(f"{role}-password-long")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{live.url}/console/")  # type: ignore[attr-defined]


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def enrol(page: object, live: Live, name: str, phone: str, zone: str, quiet: str = "") -> None:
    page.goto(f"{live.url}/console/participants/new")  # type: ignore[attr-defined]
    page.get_by_label("Name or alias").fill(name)  # type: ignore[attr-defined]
    page.get_by_label("Home phone number").fill(phone)  # type: ignore[attr-defined]
    page.get_by_label("Time zone").select_option(zone)  # type: ignore[attr-defined]
    page.get_by_label("Quiet hours (optional)").fill(quiet)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Enrol").click()  # type: ignore[attr-defined]
    page.get_by_text("Enrolled.").wait_for()  # type: ignore[attr-defined]


def test_staff_enrol_and_pair_then_a_call_shows_on_the_pair_page(page: object, live: Live) -> None:
    p = page
    response = p.goto(f"{live.url}/console/login")  # type: ignore[attr-defined]
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    shot(p, "01-sign-in")
    sign_in(p, live, "staff")

    p.goto(f"{live.url}/console/participants/new")  # type: ignore[attr-defined]
    p.get_by_label("Name or alias").fill("Ana")  # type: ignore[attr-defined]
    p.get_by_label("Home phone number").fill("555-01")  # type: ignore[attr-defined]
    p.get_by_label("Quiet hours (optional)").fill("late")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Enrol").click()  # type: ignore[attr-defined]
    assert p.locator("#phone-error").inner_text().startswith("This phone number does not look right")  # type: ignore[attr-defined]
    assert p.locator("#quiet_hours-error").inner_text().startswith("Write quiet hours like 21:00-09:00")  # type: ignore[attr-defined]
    assert p.get_by_label("Name or alias").input_value() == "Ana"  # what was typed is kept  # type: ignore[attr-defined]
    shot(p, "05-enrol-with-an-error")

    enrol(p, live, "Ana", "(617) 555-0101", "America/New_York", "21:00-09:00")
    shot(p, "06-participant")
    enrol(p, live, "Bea", "617 555 0102", "America/Chicago")
    p.goto(f"{live.url}/console/pairs/new")  # type: ignore[attr-defined]
    p.get_by_label("First partner").select_option(label="Ana (#1, America/New_York)")  # type: ignore[attr-defined]
    p.get_by_label("Second partner").select_option(label="Bea (#2, America/Chicago)")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Make the pair").click()  # type: ignore[attr-defined]
    p.wait_for_url(f"{live.url}/console/pairs/1")  # type: ignore[attr-defined]

    live.phone.call(ANA, Scripted(talk_seconds=300), Scripted(["1"]))
    p.reload()  # type: ignore[attr-defined]
    row = p.locator("table tbody tr").first  # type: ignore[attr-defined]
    assert "Ana" in row.inner_text() and "talked 5 min" in row.inner_text()
    assert "partner call" in row.inner_text()
    assert "Tue Nov 17, 2026 15:00 EST" in row.inner_text()  # the programme's own time, not UTC
    shot(p, "04-pair")

    p.goto(f"{live.url}/console/pairs")  # type: ignore[attr-defined]
    assert "Ana & Bea" in p.locator("table").inner_text()  # type: ignore[attr-defined]
    shot(p, "03-pairs")
    p.goto(f"{live.url}/console/participants")  # type: ignore[attr-defined]
    assert "+16175550101" in p.locator("table").inner_text()  # type: ignore[attr-defined]
    shot(p, "07-participants")
    p.goto(f"{live.url}/console/")  # type: ignore[attr-defined]
    assert "(1 of 1; Nov 10 – Nov 17)" in p.locator(".tiles").inner_text()  # type: ignore[attr-defined]
    shot(p, "02-today")


def test_a_nurse_hears_a_message_marks_it_handled_and_cannot_enrol_or_remove(
    page: object, live: Live
) -> None:
    p = page
    sign_in(p, live, "staff")
    enrol(p, live, "Ana", ANA, "America/New_York")
    enrol(p, live, "Bea", BEA, "America/New_York")
    p.goto(f"{live.url}/console/pairs/new?with=1")  # type: ignore[attr-defined]
    p.get_by_label("Second partner").select_option("2")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Make the pair").click()  # type: ignore[attr-defined]
    live.phone.call(BEA, Scripted(["1"], talk_seconds=90, message_seconds=25), Scripted(["1"]))
    p.get_by_role("button", name="Sign out").click()  # type: ignore[attr-defined]

    sign_in(p, live, "nurse")
    nav = p.get_by_role("navigation", name="Main").inner_text()  # type: ignore[attr-defined]
    assert "Participants" not in nav and "Staff" not in nav
    p.goto(f"{live.url}/console/messages")  # type: ignore[attr-defined]
    card = p.locator("li.message").first  # type: ignore[attr-defined]
    assert "Bea" in card.inner_text() and "25 seconds" in card.inner_text()
    audio = p.request.get(f"{live.url}/console/messages/1/recording")  # type: ignore[attr-defined]
    # development without a Twilio account: a generated tone, not the fake's silent frame
    assert audio.status == 200 and audio.headers["content-type"] == "audio/wav"
    shot(p, "08-messages")
    p.get_by_role("button", name="Mark handled").click()  # type: ignore[attr-defined]
    p.goto(f"{live.url}/console/messages?show=handled")  # type: ignore[attr-defined]
    assert "Handled by nurse@clinic.example.org" in p.locator("li.message").first.inner_text()  # type: ignore[attr-defined]

    p.goto(f"{live.url}/console/pairs/1")  # type: ignore[attr-defined]
    assert p.get_by_role("button", name="End this pair").count() == 0  # type: ignore[attr-defined]
    for url in ("/console/participants/new", "/console/participants/1/remove", "/console/staff"):
        response = p.goto(live.url + url)  # type: ignore[attr-defined]
        assert response.status == 403
        assert "This page is for" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    refused = p.request.post(f"{live.url}/console/participants/1/remove", form={"csrf_token": "x"})  # type: ignore[attr-defined]
    assert refused.status == 403


def test_staff_remove_a_participant_after_reading_what_is_erased(page: object, live: Live) -> None:
    p = page
    sign_in(p, live, "staff")
    enrol(p, live, "Ana", ANA, "America/New_York")
    p.goto(f"{live.url}/console/participants/1")  # type: ignore[attr-defined]
    p.get_by_role("link", name="Remove this participant's number…").click()  # type: ignore[attr-defined]
    text = p.locator("main").inner_text()  # type: ignore[attr-defined]
    assert "What is erased" in text and "What is kept" in text and "record of past calls" in text
    shot(p, "09-remove-confirmation")
    p.get_by_role("button", name="Yes, remove the number").click()  # type: ignore[attr-defined]
    p.wait_for_url(f"{live.url}/console/participants/1")  # type: ignore[attr-defined]
    assert "Phone: erased" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    assert "withdrawn" in p.locator("main").inner_text()  # type: ignore[attr-defined]


def test_a_form_without_its_csrf_token_is_refused(page: object, live: Live) -> None:
    p = page
    sign_in(p, live, "staff")
    response = p.request.post(  # type: ignore[attr-defined]
        f"{live.url}/console/participants",
        form={"name": "Mallory", "phone": "+16175550105", "timezone": "UTC"},
    )
    assert response.status == 403 and "form has expired" in response.text()
    p.goto(f"{live.url}/console/participants")  # type: ignore[attr-defined]
    assert "Mallory" not in p.locator("main").inner_text()  # type: ignore[attr-defined]


def test_the_session_ends_after_fifteen_idle_minutes(page: object, live: Live) -> None:
    p = page
    sign_in(p, live, "nurse")
    live.clock.advance(minutes=14)
    p.goto(f"{live.url}/console/pairs")  # type: ignore[attr-defined]
    assert p.url == f"{live.url}/console/pairs"  # type: ignore[attr-defined]
    live.clock.advance(minutes=14)  # still inside: the session slid with the last page
    p.goto(f"{live.url}/console/attention")  # type: ignore[attr-defined]
    assert p.url == f"{live.url}/console/attention"  # type: ignore[attr-defined]
    live.clock.advance(minutes=16)
    p.goto(f"{live.url}/console/pairs")  # type: ignore[attr-defined]
    assert p.url.startswith(f"{live.url}/console/login")  # type: ignore[attr-defined]


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(page: object, live: Live) -> None:
    p = page
    sign_in(p, live, "staff")
    copied = p.context.cookies()  # type: ignore[attr-defined]
    p.get_by_role("button", name="Sign out").click()  # type: ignore[attr-defined]
    p.wait_for_url(f"{live.url}/console/login")  # type: ignore[attr-defined]
    p.context.add_cookies(copied)  # type: ignore[attr-defined]
    p.goto(f"{live.url}/console/pairs")  # type: ignore[attr-defined]
    assert p.url.startswith(f"{live.url}/console/login")  # type: ignore[attr-defined]


def test_admin_pages_and_the_attention_list(page: object, live: Live) -> None:
    from app.models import AttentionFlag, Reminder
    from app.services import participants

    with live.app.state.sessionmaker() as db:
        vault = live.app.state.context.vault
        a = participants.enrol(
            db, vault, name="Cal", phone="+16175550103", timezone="UTC", quiet_hours=None, now=live.clock()
        )
        b = participants.enrol(
            db, vault, name="Dee", phone="+16175550104", timezone="UTC", quiet_hours=None, now=live.clock()
        )
        pair = participants.make_pair(db, a.id, b.id, now=live.clock())
        db.add(
            AttentionFlag(
                pair_id=pair.id,
                period_start=live.clock(),
                raised_at=live.clock(),
                reason="no contact for 2 weeks; 4 reminder calls unanswered",
            )
        )
        db.add(
            Reminder(
                participant_id=a.id,
                pair_id=pair.id,
                period_start=live.clock(),
                state="unknown",
                attempts=1,
                next_attempt_at=live.clock(),
                last_error="Twilio answered 503",
                created_at=live.clock(),
                updated_at=live.clock(),
            )
        )
        db.commit()
    p = page
    sign_in(p, live, "admin")
    p.goto(f"{live.url}/console/attention")  # type: ignore[attr-defined]
    assert "4 reminder calls unanswered" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    shot(p, "10-attention")
    p.get_by_label("What did you do?").fill("Called Cal; they will try Sunday")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Mark reached out").click()  # type: ignore[attr-defined]
    assert "No pair needs attention" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    p.goto(f"{live.url}/console/pairs/{pair.id}")  # type: ignore[attr-defined]
    assert "Called Cal; they will try Sunday" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    reminders = p.locator("section", has=p.get_by_role("heading", name="Reminders")).inner_text()  # type: ignore[attr-defined]
    assert "outcome unknown: check Twilio" in reminders and "Twilio answered 503" in reminders, reminders
    p.goto(f"{live.url}/console/staff")  # type: ignore[attr-defined]
    shot(p, "11-staff")
    p.goto(f"{live.url}/console/audit")  # type: ignore[attr-defined]
    assert "attention.clear" in p.locator("table").inner_text()  # type: ignore[attr-defined]
    shot(p, "12-audit")


def test_pages_fit_the_window_at_200_percent_zoom_and_work_by_keyboard(browser: object, live: Live) -> None:
    # 200 % zoom of a 1280-pixel window is a 640-CSS-pixel viewport at twice the pixel density
    context = browser.new_context(viewport={"width": 640, "height": 900}, device_scale_factor=2)  # type: ignore[attr-defined]
    context.set_default_timeout(5000)
    p = context.new_page()
    try:
        p.goto(f"{live.url}/console/login")
        p.get_by_label("Email").fill("staff@clinic.example.org")
        p.get_by_label("Password").fill("staff-password-long")
        p.get_by_label("Password").press("Enter")
        p.wait_for_url(f"{live.url}/console/")
        p.keyboard.press("Tab")  # the skip link comes first
        assert p.evaluate("document.activeElement.textContent") == "Skip to content"
        p.keyboard.press("Enter")
        assert p.evaluate("document.activeElement.id") == "main"
        for path in ("/console/", "/console/pairs", "/console/participants/new", "/console/messages"):
            p.goto(live.url + path)
            overflow = p.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways at 200 % zoom"
        shot(p, "13-messages-at-200-percent-zoom")
    finally:
        context.close()


# ---------------------------------------------------------------- issue 14: nurses act from the console

NURSE_PHONE = "+16175550107"


def _no_number_in(html: str, *numbers: str) -> None:
    """No phone number in any spelling a page might use: E.164, national, dashed, bare digits."""
    for number in numbers:
        digits = number[-10:]
        spellings = (
            number,
            digits,
            f"{digits[:3]}-{digits[3:6]}-{digits[6:]}",
            f"{digits[3:6]}-{digits[6:]}",
        )
        assert not any(s in html for s in spellings), f"a number ending {digits[-2:]} is on the page"
    assert "555" not in html, "part of a phone number is on the page"


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _programme_with_a_message_and_a_flag(live: Live) -> int:
    """Ana (in Chicago, an hour behind the programme) and Bea in Boston: one talk, one call Bea
    did not take, a message Ana left for the care team, and the pair on the attention list."""
    from app.models import AttentionFlag
    from app.services import participants

    with live.app.state.sessionmaker() as db:
        vault = live.app.state.context.vault
        ana = participants.enrol(
            db, vault, name="Ana", phone=ANA, timezone="America/Chicago", quiet_hours=None, now=live.clock()
        )
        bea = participants.enrol(
            db, vault, name="Bea", phone=BEA, timezone="America/New_York", quiet_hours=None, now=live.clock()
        )
        pair = participants.make_pair(db, ana.id, bea.id, now=live.clock())
        # a pair made three weeks ago that has never talked: quiet
        cal = participants.enrol(
            db, vault, name="Cal", phone=CAL, timezone="America/New_York", quiet_hours=None, now=live.clock()
        )
        dee = participants.enrol(
            db, vault, name="Dee", phone=DEE, timezone="America/New_York", quiet_hours=None, now=live.clock()
        )
        participants.make_pair(db, cal.id, dee.id, now=live.clock() - timedelta(days=21))
        db.commit()
        pair_id = pair.id
    live.clock.now = live.clock.now.replace(hour=15)
    live.phone.call(ANA, Scripted(talk_seconds=90), Scripted(["1"]))
    live.clock.advance(hours=2)
    # Bea's phone rings and she says nothing: she did not press 1; Ana leaves a message then
    live.phone.call(ANA, Scripted(["1"], message_seconds=25), Scripted())
    live.clock.advance(hours=3)
    with live.app.state.sessionmaker() as db:
        db.add(
            AttentionFlag(
                pair_id=pair_id,
                period_start=live.clock(),
                raised_at=live.clock(),
                reason="no contact for 2 weeks; 4 reminder calls unanswered",
            )
        )
        db.commit()
    return pair_id


def test_a_nurse_calls_back_from_a_message_clears_a_flag_and_reads_local_times_and_honest_labels(
    page: object, live: Live, fake_twilio: FakeTwilio
) -> None:
    pair = _programme_with_a_message_and_a_flag(live)
    fake_twilio.calls.clear()  # the partner legs of the calls above: only the nurse's call counts now
    p = page
    sign_in(p, live, "nurse")
    p.goto(f"{live.url}/console/account")  # type: ignore[attr-defined]
    p.get_by_label("Your phone number").fill("(617) 555-0107")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Save phone").click()  # type: ignore[attr-defined]
    assert "••07" in p.locator("main").inner_text()  # type: ignore[attr-defined]

    # the inbox: who left it, during which call, when in her own time, and a Call button
    p.goto(f"{live.url}/console/messages")  # type: ignore[attr-defined]
    card = p.locator("li.message").first  # type: ignore[attr-defined]
    text = card.inner_text()
    assert "Ana" in text and "25 seconds" in text and "Ana’s time" in text, text
    assert "Ana → Bea: did not press 1" in text, "the call it was left in says who did not answer"
    _no_number_in(p.content(), ANA, BEA, NURSE_PHONE)  # type: ignore[attr-defined]
    shot(p, "14-messages-call-back")

    card.get_by_role("button", name="Call Ana").click()
    assert "Your phone is ringing now" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    _no_number_in(p.content(), ANA, NURSE_PHONE)  # type: ignore[attr-defined]
    (to_nurse,) = fake_twilio.calls
    assert to_nurse.to == NURSE_PHONE and to_nurse.from_ == PROGRAMME_NUMBER
    # the nurse answers and presses 1: only then is Ana's phone rung, also from the programme
    base = {
        "CallSid": to_nurse.sid,
        "AccountSid": "AC" + "0" * 32,
        "From": PROGRAMME_NUMBER,
        "To": NURSE_PHONE,
    }
    heard = live.phone.post(to_nurse.url, base)
    assert "connecting you to Ana" in heard.text and ANA not in heard.text
    live.phone.post(to_nurse.url.replace("/staff?", "/staff-answer?"), {**base, "Digits": "1"})
    _wait_for(lambda: len(fake_twilio.calls) == 2)
    to_ana = fake_twilio.calls[1]
    assert to_ana.to == ANA and to_ana.from_ == PROGRAMME_NUMBER
    ana_leg = {"CallSid": to_ana.sid, "AccountSid": base["AccountSid"], "From": PROGRAMME_NUMBER, "To": ANA}
    live.phone.post(to_ana.url, ana_leg)
    live.phone.post(to_ana.status_callback or "", {**ana_leg, "CallStatus": "in-progress"})
    live.phone.post(
        to_ana.status_callback or "", {**ana_leg, "CallStatus": "completed", "CallDuration": "190"}
    )
    live.phone.post(
        to_nurse.status_callback or "", {**base, "CallStatus": "completed", "CallDuration": "200"}
    )

    p.goto(f"{live.url}/console/messages")  # type: ignore[attr-defined]
    card = p.locator("li.message").first  # type: ignore[attr-defined]
    card.get_by_label("What did you do? (optional)").fill("Called Ana back; she is fine")
    card.get_by_role("button", name="Mark handled").click()
    p.goto(f"{live.url}/console/messages?show=handled")  # type: ignore[attr-defined]
    handled = p.locator("li.message").first.inner_text()  # type: ignore[attr-defined]
    assert "Handled by nurse@clinic.example.org" in handled and "Called Ana back; she is fine" in handled

    # the pairs list, while the flag is open: which pair is quiet, which is flagged, and why
    p.goto(f"{live.url}/console/pairs?sort=quietest")  # type: ignore[attr-defined]
    assert "Contacts this period" in p.locator("thead").inner_text()  # type: ignore[attr-defined]
    assert "this week" in p.locator("thead").inner_text()  # type: ignore[attr-defined]
    legend = p.get_by_label("What the marks mean").inner_text()  # type: ignore[attr-defined]
    assert "quiet" in legend and "flagged" in legend
    cal_and_dee, ana_and_bea = p.locator("tbody tr").all_inner_texts()  # type: ignore[attr-defined]
    assert "quiet" in cal_and_dee and "paired 21 days ago" in cal_and_dee
    assert "flagged" in ana_and_bea and "1 min 30 s" in ana_and_bea and "today" in ana_and_bea
    _no_number_in(p.content(), ANA, BEA, CAL, DEE)  # type: ignore[attr-defined]
    shot(p, "17-pairs-with-legend")

    # the attention list: a nurse clears the flag with a note
    p.goto(f"{live.url}/console/attention")  # type: ignore[attr-defined]
    assert "4 reminder calls unanswered" in p.locator("main").inner_text()  # type: ignore[attr-defined]
    _no_number_in(p.content(), ANA, BEA, NURSE_PHONE)  # type: ignore[attr-defined]
    shot(p, "15-attention")
    p.get_by_label("What did you do?").fill("Called Ana; they will try on Sunday")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Mark reached out").click()  # type: ignore[attr-defined]
    assert "No pair needs attention" in p.locator("main").inner_text()  # type: ignore[attr-defined]

    # the pair page: honest labels, her own time beside the programme's, the note and who
    p.goto(f"{live.url}/console/pairs/{pair}")  # type: ignore[attr-defined]
    main = p.locator("main").inner_text()  # type: ignore[attr-defined]
    calls = p.locator("section", has=p.get_by_role("heading", name="Calls")).inner_text()  # type: ignore[attr-defined]
    assert "talked 1 min 30 s" in calls and "did not press 1" in calls
    assert (
        "care-team call" in calls
        and "nurse@clinic.example.org → Ana" in calls
        and "talked 3 min 10 s" in calls
    )
    assert "Tue Nov 17, 2026 15:00 EST" in calls and "14:00 Ana’s time" in calls
    history = p.locator("section", has=p.get_by_role("heading", name="Attention history")).inner_text()  # type: ignore[attr-defined]
    assert "by nurse@clinic.example.org" in history and "Called Ana; they will try on Sunday" in history
    assert "(Nov 10 – Nov 17)" in main
    _no_number_in(p.content(), ANA, BEA, NURSE_PHONE)  # type: ignore[attr-defined]
    shot(p, "16-pair-after-outreach")

    response = p.goto(f"{live.url}/console/pairs/999")  # type: ignore[attr-defined]
    assert response.status == 404
    assert "Pairs" in p.get_by_role("navigation", name="Main").inner_text()  # type: ignore[attr-defined]
    shot(p, "18-error-page-keeps-the-menu")


def test_staff_without_a_phone_who_press_call_are_told_to_add_one(
    page: object, live: Live, fake_twilio: FakeTwilio
) -> None:
    from app.services import participants

    with live.app.state.sessionmaker() as db:
        participants.enrol(
            db,
            live.app.state.context.vault,
            name="Ana",
            phone=ANA,
            timezone="America/Chicago",
            quiet_hours=None,
            now=live.clock(),
        )
        db.commit()
    p = page
    sign_in(p, live, "staff")
    p.goto(f"{live.url}/console/participants/1")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Call Ana").click()  # type: ignore[attr-defined]
    alert = p.get_by_role("alert").inner_text()  # type: ignore[attr-defined]
    assert "Add your own phone number first" in alert
    assert fake_twilio.calls == [], "nothing was rung"
    shot(p, "19-call-needs-your-phone")
    p.get_by_role("link", name="Add your phone on your account page").click()  # type: ignore[attr-defined]
    p.wait_for_url(f"{live.url}/console/account#phone")  # type: ignore[attr-defined]
    assert p.get_by_label("Your phone number").is_visible()  # type: ignore[attr-defined]
