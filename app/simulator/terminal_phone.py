"""`peerline phone`: the user holds the caller's phone, and the partner's when it rings."""

from __future__ import annotations

import time
from collections.abc import Callable

import typer

from app.simulator.telephone import HANG_UP, HANGS_UP, OTHER_HANGS_UP, OTHER_STARS, STAR
from ivr.vocab import AnsweredBy


class TerminalParty:
    busy = False
    answered_by = AnsweredBy.HUMAN

    def __init__(self, label: str, read: Callable[[str], str] = input) -> None:
        self.label = label
        self.read = read

    def hear(self, text: str) -> None:
        verb = "hear" if self.label == "You" else "hears"
        typer.secho(f"  {self.label} {verb}: ", fg=typer.colors.CYAN, nl=False)
        typer.echo(text)

    def ring(self) -> bool:
        whose = "Your" if self.label == "You" else f"{self.label}'s"
        typer.secho(f"\n  ☎  {whose} phone is ringing.", fg=typer.colors.YELLOW)
        answer = self._ask("Enter to answer, n then Enter to let it ring")
        return answer.strip().lower() not in ("n", HANG_UP)

    def keys(self, finish_on_key: str | None, num_digits: int | None) -> str | None:
        if finish_on_key:
            hint = f"type digits, end with {finish_on_key}"
        else:
            hint = "press a key" if num_digits == 1 else "type digits"
        typed = self._ask(f"{hint}; Enter alone = silence; h = hang up").strip()
        if typed.lower() == HANG_UP:
            return HANG_UP
        if finish_on_key and typed and not typed.endswith(finish_on_key):
            typed += finish_on_key
        return typed or None

    def talk(self) -> tuple[int, str]:
        """Both partners are in the room: how does this stretch of the conversation end?"""
        started = time.monotonic()
        typer.secho("\n  The partners are talking.", fg=typer.colors.GREEN)
        typed = (
            self._ask("Enter = the other hangs up; * = press star; p* = the other presses star; h = hang up")
            .strip()
            .lower()
        )
        seconds = int(time.monotonic() - started)
        extra = self._ask("how many seconds did you talk? (Enter = the time that passed)").strip()
        if extra.isdigit():
            seconds = int(extra)
        ends = {"*": STAR, "p*": OTHER_STARS, HANG_UP: HANGS_UP}.get(typed, OTHER_HANGS_UP)
        return seconds, ends

    def record(self) -> int | None:
        typer.secho("  (beep) Speak your message; Enter when done, h to hang up.", fg=typer.colors.MAGENTA)
        started = time.monotonic()
        typed = self._ask("").strip().lower()
        if typed == HANG_UP:
            return None
        return max(1, int(time.monotonic() - started))

    def _ask(self, prompt: str) -> str:
        try:
            return self.read(f"  [{self.label}] {prompt} > ")
        except EOFError:
            return HANG_UP
