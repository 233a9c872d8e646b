"""Measurements the suite makes for docs/reliability.md ("Under attack"), kept in the git-ignored
build/under-attack.json so running the tests never changes a tracked file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parent.parent / "build" / "under-attack.json"


def record_figures(key: str, figures: dict[str, Any]) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known[key] = figures
    FIGURES.write_text(json.dumps(known, indent=2, sort_keys=True))


def database_name(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"
