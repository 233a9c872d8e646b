"""ivr/ is the call flow and nothing else: no web framework, no database."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

IVR = Path(__file__).resolve().parent.parent / "ivr"
ALLOWED_THIRD_PARTY = {"twilio", "phonenumbers"}
HAND_WRITTEN = re.compile(r"[\"']\s*<(Response|Say|Dial|Gather|Number|Record)\b")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ivr_imports_only_the_standard_library_twilio_and_phonenumbers() -> None:
    for path in IVR.glob("*.py"):
        foreign = {
            name
            for name in _imports(path)
            if name not in sys.stdlib_module_names and name not in ALLOWED_THIRD_PARTY and name != "ivr"
        }
        assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_ivr_twiml_comes_from_the_sdk_not_hand_written_xml() -> None:
    for path in IVR.glob("*.py"):
        assert not HAND_WRITTEN.search(path.read_text()), f"{path.name} writes TwiML by hand"
