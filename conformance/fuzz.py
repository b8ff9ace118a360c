"""The conformance machine as a HypoFuzz target (and a plain Hypothesis stateful test).

HypoFuzz (``pip install -e '.[fuzz]'``) fuzzes the Hypothesis tests pytest collects; this module
holds one, :class:`TestNlmmapConformance`, the suite's state machine against the target named by
the environment (read when the first example starts, once per process, so every fuzz worker
starts its own SUT)::

    NLMMAP_FUZZ_IMPL=nlmmap.impl.adapter:ImplBackend hypothesis fuzz -n 2 -- --pyargs nlmmap.conformance.fuzz
    NLMMAP_FUZZ_EXEC="python -m nlmmap.impl.adapter" hypothesis fuzz -- --pyargs nlmmap.conformance.fuzz

Failing examples go to Hypothesis' example database (HypoFuzz's, shared by its workers; on a
shared directory, by machines), and the test then fails there: a mismatch is reported as by
``nlmmap conform`` (the request, both answers, the frames). ``NLMMAP_FUZZ_MEMORY`` picks the
memory mode (``auto``, ``shared``, ``proxied``). Without a target variable the test errors, naming
them. The module is not named ``test_*``: ``pytest --pyargs nlmmap.conformance`` does not run it.
As a plain Hypothesis test (``pytest --pyargs nlmmap.conformance.fuzz``) it runs as many examples as
the settings profile says, e.g. ``--hypothesis-profile nlmmap-soak`` (examples kept in
``.hypothesis/nlmmap-soak``, or the directory ``NLMMAP_DATABASE`` names: share it between workers
and machines), under pytest-xdist too.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from hypothesis import HealthCheck, settings

from .machine import RunContext, machine_for

__all__ = ["TestNlmmapConformance", "LazyRunContext", "ENV_IMPL", "ENV_EXEC", "ENV_MEMORY"]

ENV_IMPL, ENV_EXEC, ENV_MEMORY = "NLMMAP_FUZZ_IMPL", "NLMMAP_FUZZ_EXEC", "NLMMAP_FUZZ_MEMORY"


class LazyRunContext(RunContext):
    """A run context whose session (and SUT) starts when the first example needs it."""

    def __init__(self) -> None:
        self._session: Any = None
        super().__init__(None)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def session(self) -> Any:
        if self._session is None:
            self._session = _start_session()
        return self._session

    @session.setter
    def session(self, value: Any) -> None:
        if value is not None:
            self._session = value


def _start_session() -> Any:
    from .runner import make_target
    from .session import Session

    impl, cmd = os.environ.get(ENV_IMPL), os.environ.get(ENV_EXEC)
    if bool(impl) == bool(cmd):
        raise RuntimeError(f"nlmmap.conformance.fuzz needs a target: set {ENV_IMPL}=module:factory or "
                           f"{ENV_EXEC}='COMMAND ...' (exactly one)")
    target = make_target(exec_cmd=cmd, impl=impl)
    session = Session(target, memory=os.environ.get(ENV_MEMORY, "auto"))
    session.hello()

    def stop() -> None:
        session.close_all()
        target.close()

    atexit.register(stop)
    return session


_Machine = machine_for(LazyRunContext())
# max_examples and the database come from the settings profile in force (``--hypothesis-profile``:
# the plugin registers nlmmap-ci and nlmmap-soak); HypoFuzz ignores max_examples and runs until stopped
_Machine.TestCase.settings = settings(stateful_step_count=50, deadline=None,
                                      suppress_health_check=list(HealthCheck), print_blob=True)


class TestNlmmapConformance(_Machine.TestCase):  # type: ignore[name-defined,misc]
    """The suite's state machine: every step agrees with the reference model."""
