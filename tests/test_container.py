"""The image's recipe and the lock file, checked where no container engine runs.

`docker build` is not run here (no engine on the development machine or in CI); these checks
hold the Dockerfile and compose.yaml to what docs/operations.md promises, and the lock files
to pyproject.toml and to what the suite runs on.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def locked(name: str) -> dict[str, str]:
    """Package -> pinned version; every pin must carry at least one hash."""
    text = (ROOT / name).read_text()
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split(" ", 1)[0].strip()
        if "==" not in head or head.startswith("#"):
            continue
        package, version = head.split("==")
        assert "--hash=sha256:" in block, f"{package} in {name} has no hash"
        pins[canonicalize_name(package)] = version
    return pins


def pyproject() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        "runtime": [Requirement(r) for r in project["dependencies"]],
        "dev": [Requirement(r) for r in project["optional-dependencies"]["dev"]],
    }


def test_the_image_installs_from_the_lock_with_hashes_and_runs_as_non_root() -> None:
    steps = instructions()
    keywords = [k for k, _ in steps]
    runs = " ".join(args for k, args in steps if k == "RUN")
    assert "--require-hashes" in runs and "-r requirements.lock" in runs
    assert any(k == "COPY" and "requirements.lock" in args for k, args in steps)
    # nothing resolved outside the lock: no unpinned installs of anything
    assert not re.search(r"pip install (?!--require-hashes)", runs), runs

    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")

    (health,) = [args for k, args in steps if k == "HEALTHCHECK"]
    assert "CMD" in health and "/healthz" in health

    (command,) = [args for k, args in steps if k == "CMD"]
    shell = " ".join(shlex.split(command.strip("[]").replace(",", " ")))
    assert shell.index("peerline db upgrade") < shell.index("peerline serve")
    assert "--host 0.0.0.0" in shell


def test_compose_runs_the_app_on_postgresql_with_secrets_from_the_environment() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    db, app = services["db"], services["app"]
    assert str(db["image"]).startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert app["build"] == "."
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    env = app["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in env["DATABASE_URL"]
    assert env["ENVIRONMENT"] == "production"
    for secret in ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"):
        assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), secret
    assert "${POSTGRES_PASSWORD" in db["environment"]["POSTGRES_PASSWORD"]
    # published on loopback only: a TLS proxy sits in front
    assert all(str(port).startswith("127.0.0.1:") for port in app["ports"])


@pytest.mark.parametrize(
    ("lock", "groups"), [("requirements.lock", ["runtime"]), ("requirements-dev.lock", ["runtime", "dev"])]
)
def test_the_lock_pins_every_dependency_above_its_lower_bound(lock: str, groups: list[str]) -> None:
    pins = locked(lock)
    for group in groups:
        for requirement in pyproject()[group]:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement.name} is not in {lock}: run scripts/lock.sh"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, outside {requirement.specifier}"
            )


def test_both_locks_agree_and_the_suite_runs_on_the_locked_versions() -> None:
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    installed = {}
    for name in dev:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed[name] = None
    different = {name: (dev[name], installed[name]) for name in dev if installed[name] != dev[name]}
    assert not different, (
        f"installed versions differ from requirements-dev.lock (lock, installed): {different}"
    )


def test_known_vulnerable_releases_are_excluded() -> None:
    floors = {canonicalize_name(r.name): r.specifier for r in pyproject()["runtime"]}
    for name, bad in (
        ("python-multipart", "0.0.31"),
        ("jinja2", "3.1.5"),
        ("cryptography", "49.0.0"),
        ("starlette", "1.3.0"),
        ("fastapi", "0.159.0"),
    ):
        assert not floors[name].contains(bad), f"{name} {bad} is still allowed"
