"""TOCTOU checks (placeholder, filled in below)."""
from __future__ import annotations

from .report import Check


def race_check(session, *, progress=None) -> Check:
    return Check("toctou_race", "skipped", "not built yet")
