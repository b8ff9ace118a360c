"""Shared test setup: Hypothesis profiles, and the one way to reach the shared reference folder.

Hypothesis: ``ci`` (default: derandomized, no database, seed printed) and ``soak`` (many examples,
a directory database; run with ``HYPOTHESIS_PROFILE=soak pytest -n auto``).

``../shared`` beside the repository holds the kernel fact sheet, the real-kernel transcript and the
replay tool. A test that needs a file there takes the ``shared`` fixture and calls
``shared("tools", "replay-transcript")``: a missing file fails the test with a message naming the
path (never a skip, so a run without the reference cannot pass by leaving its checks out).
"""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True, max_examples=60,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=5000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: The shared reference folder: ``../shared`` beside the repository's checkout.
SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_path(*parts: str) -> Path:
    """A file of the shared reference folder; fails the calling test, naming the path, if missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need the shared reference folder {SHARED} (../shared beside "
                    f"the repository: kernel fact sheet, real-kernel transcript, replay tool)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def shared() -> Callable[..., Path]:
    """``shared("reference", "kernel-protocol.md")``: a path in ../shared (:func:`shared_path`)."""
    return shared_path
