"""Hypothesis profiles: ``ci`` (default: derandomized, no database, seed printed) and ``soak``
(many examples, a directory database; run with ``HYPOTHESIS_PROFILE=soak pytest -n auto``)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True, max_examples=60,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=5000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
