"""The suite as a pytest plugin (entry point ``pytest11``): ``pytest --pyargs nlmmap.conformance
--nlmmap-exec "COMMAND"`` or ``--nlmmap-impl module:factory``. Imports nothing heavy at pytest start;
the run happens once per session, in the ``nlmmap_report`` fixture of the suite's own test module."""

from __future__ import annotations

from typing import Any


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


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "nlmmap_conformance: a check of the nlmmap conformance suite")
