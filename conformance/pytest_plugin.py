"""The suite as a pytest plugin (entry point ``pytest11``): ``pytest --pyargs nlmmap.conformance
--nlmmap-exec "COMMAND"`` or ``--nlmmap-impl module:factory``. Imports nothing heavy at pytest start;
the run happens once per session, in the ``nlmmap_report`` fixture of the suite's own test module."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    g = parser.getgroup("nlmmap", "nlmmap conformance suite")
    g.addoption("--nlmmap-exec", metavar="COMMAND", help="run the suite against this nlmmap-adapter/1 program")
    g.addoption("--nlmmap-impl", metavar="MODULE:FACTORY", help="run the suite against this Python backend")
    g.addoption("--nlmmap-profile", default="ci", choices=("ci", "soak", "quick"), help="suite profile (default ci)")
    g.addoption("--nlmmap-max-steps", type=int, metavar="N", help="stateful steps (default: the profile's)")
    g.addoption("--nlmmap-seed", type=int, metavar="N", help="seed of the first batch")
    g.addoption("--nlmmap-memory", default="auto", choices=("auto", "shared", "proxied"))
    g.addoption("--nlmmap-database", metavar="DIR", help="Hypothesis example database (soak, shared by workers)")
    g.addoption("--nlmmap-transcript-dir", metavar="DIR", help="where a failing run writes its transcript")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin loads --hypothesis-profile
def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "nlmmap_conformance: a check of the nlmmap conformance suite")
    if str(config.getoption("hypothesis_profile", None) or "").startswith("nlmmap-"):
        register_profiles()  # only then: Hypothesis is imported only when asked for


def register_profiles() -> None:
    """Hypothesis settings profiles for the suite's machine as a plain Hypothesis test
    (:mod:`nlmmap.conformance.fuzz`): ``nlmmap-ci`` (derandomized, no database, 400 examples of 50
    steps) and ``nlmmap-soak`` (20,000 examples, random, the directory database ``NLMMAP_DATABASE``
    or ``.hypothesis/nlmmap-soak``, which pytest-xdist workers and machines on a shared directory
    share)."""
    import os

    from hypothesis import HealthCheck, settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    common = {"deadline": None, "suppress_health_check": list(HealthCheck), "print_blob": True,
              "stateful_step_count": 50}
    settings.register_profile("nlmmap-ci", max_examples=400, derandomize=True, database=None, **common)
    db = os.environ.get("NLMMAP_DATABASE") or os.path.join(".hypothesis", "nlmmap-soak")
    settings.register_profile("nlmmap-soak", max_examples=20000, database=DirectoryBasedExampleDatabase(db), **common)
