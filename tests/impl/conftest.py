"""Fixtures of the implementation's tests: the known-bad kernel sides of ``flaws.py`` (loaded by
the kernel process from that file) and the shared reference folder beside the repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FLAWS = Path(__file__).resolve().with_name("flaws.py")
SHARED = Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture
def flaw() -> Callable[[str], str]:
    """``flaw("ValidateInPlace")`` -> the ``--socket-class`` value of that class of flaws.py."""
    return lambda name: f"{FLAWS}:{name}"


@pytest.fixture
def shared_file() -> Callable[[str], Path]:
    """``shared_file("tools/replay-transcript")``: a path in ../shared; a missing one fails the
    test naming it (the tests need ../shared beside the repository; never a skip)."""

    def get(rel: str) -> Path:
        p = SHARED / rel
        if not p.exists():
            pytest.fail(f"{p} is missing: the tests need ../shared beside the repository (CI runs with it)")
        return p

    return get
