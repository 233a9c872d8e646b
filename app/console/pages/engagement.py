"""Engagement: the programme's decay curve beside the trials', weekly contact, who never engaged.

The charts are SVG drawn here, on the server (the console runs no script); their
geometry is worked out in Python so the template only places what is computed. Staff
also download the de-identified research export here, as one zip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.console.deps import CheckedForm, Nurse, StaffMember
from app.console.render import error_page, page
from app.db import SessionDep
from app.services import engagement, research
from app.services.audit import Action
from app.services.engagement import MonthFigures
from app.services.errors import Invalid

router = APIRouter(prefix="/console", include_in_schema=False)
COHORT = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
ZIP_NAME = "peerline-research.zip"  # no date in the name: a date is an identifier
MAX_KEY = 200

# the drawing area of a chart, in SVG units
WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 30, 40  # the legend sits above the top gridline


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    month: int
    value: float
    under_way: bool  # most of its pairs are still in this month: drawn hollow, it may still rise


@dataclass(frozen=True)
class Chart:
    """One line chart: the programme's months and the trials' line, in SVG coordinates."""

    title: str
    unit: str
    points: list[Point]
    reference: list[Point]
    ticks: list[tuple[float, str]]  # (y, label)
    months: list[tuple[float, int]]  # (x, month)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM
    right: int = WIDTH - RIGHT

    @property
    def line(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def reference_line(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.reference)


def _nice_step(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value`: gridlines a
    reader takes in at a glance (0, 0.5, 1, 1.5 rather than 0, 0.625, 1.25)."""
    if value <= 0:
        return 0.25
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(step * power) for step in (1, 2, 2.5, 5, 10) if step * power >= value * (1 - 1e-9))


def _chart(
    title: str,
    unit: str,
    months: list[MonthFigures],
    value: Callable[[MonthFigures], float | None],
    reference: Callable[[MonthFigures], float | None],
) -> Chart:
    drawn = [(m, v) for m in months if (v := value(m)) is not None]
    refs = [(m, r) for m in months if (r := reference(m)) is not None]
    highest = max([v for _, v in drawn] + [r for _, r in refs] + [0.0])
    step = _nice_step(highest / 4)  # four or five gridlines above zero
    lines = max(1, math.ceil(highest / step - 1e-9))
    top = step * lines
    last = max((m.month for m in months), default=1)
    span = max(last - 1, 1)

    def x(month: int) -> float:
        return LEFT + (month - 1) * (WIDTH - LEFT - RIGHT) / span if last > 1 else (LEFT + WIDTH - RIGHT) / 2

    def y(v: float) -> float:
        return HEIGHT - BOTTOM - v / top * (HEIGHT - BOTTOM - TOP)

    every = max(1, math.ceil(last / 12))  # at most a dozen month labels
    return Chart(
        title=title,
        unit=unit,
        points=[Point(x(m.month), y(v), m.month, v, 2 * m.pairs_finished < m.pairs) for m, v in drawn],
        reference=[Point(x(m.month), y(r), m.month, r, False) for m, r in refs],
        ticks=[(y(step * i), f"{round(step * i, 6):g}") for i in range(lines + 1)],
        months=[(x(m), m) for m in range(1, last + 1) if (m - 1) % every == 0],
    )


@router.get("/engagement")
def engagement_page(
    request: Request,
    who: Nurse,
    db: SessionDep,
    cohort: Annotated[str, Query(max_length=7)] = "",
) -> Response:
    ctx = who.ctx
    settings = ctx.settings
    tz = settings.programme_timezone
    chosen, problem = cohort.strip() or None, None
    try:
        if chosen is not None and COHORT.fullmatch(chosen):
            engagement.cohort_bounds(chosen, tz)
        elif chosen is not None:
            raise Invalid("cohort: not a month")
    except Invalid:
        chosen, problem = None, "Choose a month of pairing from the list."
    history = engagement.history_for(db, tz)
    with engagement.reading(db) as snapshot:
        figures = engagement.programme(
            snapshot,
            now=ctx.clock(),
            tz=tz,
            engaged_when=settings.engaged_when,
            cohort=chosen,
            history=history,
        )
        choices = engagement.cohorts(snapshot, tz)
    who.audit(db, Action.ENGAGEMENT_READ, f"cohort:{chosen}" if chosen else "programme")
    months = figures.months
    return page(
        request,
        who,
        "engagement.html",
        400 if problem else 200,
        figures=figures,
        first=months[0] if months else None,
        calls=_chart(
            "Calls per pair, by month since pairing",
            "calls",
            months,
            lambda m: m.calls_per_pair,
            lambda m: m.reference_calls_per_pair,
        ),
        minutes=_chart(
            "Minutes per call, by month since pairing",
            "minutes",
            months,
            lambda m: m.mean_talk_minutes,
            lambda m: m.reference_talk_minutes,
        ),
        cohort=chosen,
        choices=choices,
        problem=problem,
        zone=tz,
    )


@router.post("/engagement/research.zip")
def research_zip(request: Request, who: StaffMember, form: CheckedForm, db: SessionDep) -> Response:
    """The research export as one zip. The key field links it to an earlier export made with
    the same key (here or with `peerline export research --key-file`); empty, a new key is
    used and not kept."""
    key = form.get("key", "").strip()
    if len(key) > MAX_KEY:
        return error_page(
            request, 400, "Key too long", f"An export key has at most {MAX_KEY} characters.", who
        )
    key = key or research.new_key()
    ctx = who.ctx
    with engagement.reading(db) as snapshot:
        bundle = research.build(
            snapshot, ids=research.ResearchIds(key), now=ctx.clock(), engaged_when=ctx.settings.engaged_when
        )
    who.audit(db, Action.EXPORT_RESEARCH, f"{bundle.pairs} pairs, {bundle.pair_weeks} pair-weeks")
    return Response(
        bundle.zipped(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{ZIP_NAME}"'},
    )
