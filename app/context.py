"""What every request needs besides the session: settings, the phone vault and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from app.crypto import PhoneVault
from app.services.policy import Policy
from app.settings import Settings

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    vault: PhoneVault
    clock: Clock = system_clock
    policy: Policy = field(default_factory=Policy)


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


ContextDep = Annotated[Context, Depends(get_context)]
