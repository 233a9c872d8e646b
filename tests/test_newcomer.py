"""The first ten minutes, checked the way a newcomer lives them.

The repository this file lives in is cloned (its committed HEAD: what a newcomer gets,
not this working tree) into a temporary folder, `./scripts/run.sh` serves it with a fresh
HOME on a free port, and the README's own commands are run against it: sign in to the
console with the demo account run.sh printed, see the demo pairs, place a call with
`peerline phone`, fire a reminder with `peerline reminders run --at`. A README command
that does not work as written fails here.

Two things differ from a newcomer's machine, both so the test takes seconds and never
collides with another run: run.sh reuses the suite's own virtual environment
(`PEERLINE_VENV`, which scripts/_venv.sh honours) instead of installing one, and the fake
Twilio listens on a free port (`TWILIO_API_URL`) instead of 8099. The demo is smaller
(`DEMO_PAIRS`, `DEMO_WEEKS`, as the README says) and large enough for the README's calls.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from shutil import which

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV = Path(sys.prefix)
# the README's call goes to pair 3 (participants 5 and 6 of the seeded demo)
DEMO_SIZE = {"DEMO_PAIRS": "4", "DEMO_WEEKS": "3"}
DEMO_SIGN_IN = re.compile(r"^Demo console sign-in: (\S+@\S+) / (\S+)$", re.MULTILINE)
# what a terminal a newcomer opens has; nothing of the suite's own settings leaks in
INHERITED = ("PATH", "LANG", "LC_ALL", "TERM", "TZ")


def _cannot_run() -> str | None:
    """Why this machine cannot check a fresh clone, or None when it can."""
    if which("git") is None or which("bash") is None:
        return "needs git and bash to clone the repository and run scripts/run.sh"
    if sys.prefix == sys.base_prefix or not (VENV / "bin" / "peerline").exists():
        return (
            "the suite is not running in a virtual environment with peerline installed, which "
            "run.sh could reuse (PEERLINE_VENV); installing afresh needs a package index"
        )
    inside = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"], capture_output=True, text=True
    )
    if inside.returncode != 0:
        said = (inside.stderr.strip().splitlines() or ["no commit"])[0]
        return f"git cannot read a commit to clone in {ROOT}: {said}"
    return None


WHY_NOT = _cannot_run()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def _git_status(folder: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain"], capture_output=True, text=True, check=True
    ).stdout


def readme_command(starting: str) -> str:
    """The README's own command line that starts with `starting`, without its comment."""
    blocks = re.findall(r"```(?:sh)?\n(.*?)```", README.read_text(), re.DOTALL)
    for line in "\n".join(blocks).splitlines():
        if line.startswith(starting):
            return line.split("  #", 1)[0].strip()
    raise AssertionError(f"the README has no command starting {starting!r}")


def _stop(process: subprocess.Popen[str]) -> None:
    """Its whole process group, even once the leader has gone: run.sh execs the server, and
    the commands serve their fakes; nothing of a run outlives it, failed or not."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return  # no process of the group is left
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Newcomer:
    clone: Path
    env: dict[str, str]
    url: str
    run_output: Path
    # the lines run.sh printed for a second terminal: activating the environment, and
    # telling the commands where this server is when it is not on the defaults
    second_terminal: list[str] = field(default_factory=list)

    def output(self) -> str:
        return self.run_output.read_text()

    def in_second_terminal(self, command: str, keys: str = "", timeout: float = 120) -> tuple[int, str]:
        """Run a README command in a second terminal in the clone, typing `keys`."""
        script = "\n".join(["set -e", *self.second_terminal, command])
        process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=self.clone,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(keys, timeout=timeout)
        finally:
            _stop(process)
        return process.returncode, out


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    tracked_before = _git_status(ROOT)
    base = tmp_path_factory.mktemp("newcomer")
    clone = base / "peerline"
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, capture_output=True)
    # the commit this checkout is at, branch or detached, as CI checks it out
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head], check=True, capture_output=True)
    home = base / "home"
    home.mkdir()
    port = free_port()
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(
        HOME=str(home),
        TMPDIR=str(base),
        PORT=str(port),
        TWILIO_API_URL=f"http://127.0.0.1:{free_port()}",
        PEERLINE_VENV=str(VENV),
        PYTHONDONTWRITEBYTECODE="1",
        **DEMO_SIZE,
    )
    run_output = base / "run.sh.out"
    with run_output.open("w") as out:
        served = subprocess.Popen(
            ["./scripts/run.sh"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        url = f"http://localhost:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert served.poll() is None, f"run.sh stopped:\n{run_output.read_text()}"
            assert time.monotonic() < deadline, f"no /healthz in time:\n{run_output.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        printed = run_output.read_text()
        lines = printed.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("Try it, in another terminal"))
        end = lines.index("", start)
        setup = [line.strip() for line in lines[start + 1 : end]]
        yield Newcomer(
            clone=clone,
            env=env,
            url=url,
            run_output=run_output,
            second_terminal=[line for line in setup if not line.startswith("peerline ")],
        )
    finally:
        _stop(served)
    # the clone is of the committed state and lives elsewhere: this checkout is untouched,
    # and a newcomer's clone shows nothing to commit after a run either
    assert _git_status(ROOT) == tracked_before
    assert _git_status(clone) == ""


def test_the_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert first_block is not None and text.index("```sh") < text.index("\n## ")
    commands = [line.split("#")[0].strip() for line in first_block[1].splitlines()]
    assert commands == ["./scripts/run.sh", "./scripts/test.sh"]


def test_the_readme_says_it_all_in_order_and_never_sends_a_reader_away() -> None:
    text = README.read_text()
    in_order = ["**What you see.**", "**Trying a call.**", "**Trying a reminder.**", "**The console.**"]
    in_order += ["**Ports.**", "docs/design.md"]
    places = [text.index(part) for part in in_order]
    assert places == sorted(places)
    assert "PORT" in text and "HOST" in text
    for target in re.findall(r"\]\(([^)]+)\)", text):
        # a link is a file of this repository, never a page elsewhere or a path on a machine
        assert not re.match(r"[a-z]+:|/", target), target
        assert (ROOT / target.split("#")[0]).exists(), target
    for address in re.findall(r"https?://[^\s`)<>]+", text):
        host = re.sub(r"^https?://([^/:]+).*", r"\1", address)
        # this machine, the fictional example domain, or Twilio's API as a setting's value
        assert host in ("localhost", "127.0.0.1", "api.twilio.com") or host.endswith("example.org"), address


def test_run_sh_serves_a_fresh_clone_and_prints_the_demo_sign_in_once(newcomer: Newcomer) -> None:
    printed = newcomer.output()
    assert len(DEMO_SIGN_IN.findall(printed)) == 1, printed
    assert f"Console: {newcomer.url}/console/" in printed
    assert "Traceback" not in printed
    assert printed.count("Application startup complete") == 1  # each log line once, not twice
    assert "StarletteDeprecationWarning" not in printed
    # on a port of its own, the second terminal is told where the service is
    assert f"export PUBLIC_BASE_URL={newcomer.url}" in newcomer.second_terminal
    # and it is told the README's commands, word for word
    for command in ("peerline phone --from", "peerline reminders run --at"):
        assert f"  {readme_command(command)}  " in printed


def test_the_demo_admin_signs_in_to_the_console_and_sees_the_demo_pairs(newcomer: Newcomer) -> None:
    found = DEMO_SIGN_IN.search(newcomer.output())
    assert found is not None
    email, password = found.groups()
    with httpx.Client(base_url=newcomer.url, timeout=20) as browser:
        form = browser.get("/console/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        signed_in = browser.post(
            "/console/login",
            data={"email": email, "password": password, "csrf_token": csrf[1], "next": "/console/pairs"},
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/pairs"
        pairs = browser.get("/console/pairs")
    assert pairs.status_code == 200
    assert "Demo data" in pairs.text and f"{email} (admin)" in pairs.text
    listed = set(re.findall(r'href="/console/pairs/(\d+)"', pairs.text))
    assert len(listed) == int(DEMO_SIZE["DEMO_PAIRS"])


def test_a_call_placed_as_the_readme_says_reaches_the_partner(newcomer: Newcomer) -> None:
    # the partner's phone rings here: Enter answers, 1 to talk; the partner hangs up after
    # 75 seconds; the caller presses 1 and leaves a message (Enter ends it)
    keys = "\n".join(["", "1", "", "75", "1", "", ""]) + "\n"
    code, out = newcomer.in_second_terminal(readme_command("peerline phone --from"), keys)
    assert code == 0, out
    assert "Do not change any medicine" in out
    assert "Your partner hears: Your Peerline partner is calling you." in out
    assert "You hear: Your partner has hung up." in out
    assert "The call has ended." in out
    # the whole log: a reminder fired by another test may sit at a later moment
    code, log = newcomer.in_second_terminal("peerline calls --limit 100")
    assert code == 0, log
    assert re.search(r"\tpeer\t3\t.*\t1 min 15 s\ttalked 1 min 15 s$", log, re.MULTILINE), log


def test_a_reminder_fired_as_the_readme_says_goes_out_through_the_fake(newcomer: Newcomer) -> None:
    # the first reminder rings: Enter answers, 1 puts her through; the partner's phone rings
    # here too, Enter and 1; the partner hangs up after 90 seconds, she hangs up; the other
    # reminders ring out (no more keys)
    keys = "\n".join(["", "1", "", "1", "", "90", "h"]) + "\n"
    command = readme_command("peerline reminders run --at")
    code, out = newcomer.in_second_terminal(command, keys)
    assert code == 0, out
    sweep = re.search(r"^reminder sweep at (\S+): scheduled \d+, flagged \d+, placed (\d+),", out, re.M)
    assert sweep is not None and int(sweep[2]) >= 1, out
    at = datetime.fromisoformat(sweep[1])
    assert at > datetime.now(UTC) + timedelta(days=7)  # the README's moment is a week ahead
    assert "Peerline is calling" in out and "have not talked in a while" in out
    if int(sweep[2]) > 1:
        assert f"{sweep[2]} reminder calls: each rings here in turn" in out
    # the service runs on the real clock: the partner may keep quiet hours at this hour of
    # the real day, whatever moment the sweep was told; then she hears so and nobody is rung
    bridged = "Your partner does not take calls at this hour." not in out
    if bridged:
        assert "Your partner hears: Your Peerline partner is calling you." in out
    assert "Traceback" not in out and "twilio.http_client" not in out  # no request headers
    # the service's call log holds every call the fake placed, the answered one a contact
    code, log = newcomer.in_second_terminal("peerline calls --limit 100")
    assert code == 0, log
    at_that_moment = f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"
    fired = [line.split("\t") for line in log.splitlines() if f"\t{at_that_moment} UTC\treminder\t" in line]
    assert len(fired) == int(sweep[2]), log
    assert [fields[-2:] for fields in fired].count(
        ["1 min 30 s", "connected to partner, talked 1 min 30 s"]
    ) == (1 if bridged else 0), log
