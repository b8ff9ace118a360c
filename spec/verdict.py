"""The one ordered verdict of the proof kit: ok < unknown < FAILED < ERROR, shared by prove and bmc.

The order is severity, so the worst verdict of a run decides its exit code: 0 when everything is
ok (proved, or no violation to the depth searched), 1 when something FAILED (a counterexample to
induction, or a violating trace, each confirmed by the spec's interpreter), 3 when the solver could
not decide (``unknown``, timeouts included), which is never folded into ok, and 4 for an ERROR: a
counterexample the solver produced that the spec's interpreter refutes, i.e. a bug of the engine
(its z3 translation and the interpreter disagree), never shown as a counterexample.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Verdict"]


class Verdict(enum.IntEnum):
    """Outcome of an obligation or a search, ordered by severity."""

    OK = 0
    UNKNOWN = 1
    FAILED = 2
    ERROR = 3

    @property
    def text(self) -> str:
        """As a proof reports it: ``ok``, ``unknown``, ``FAILED`` or ``ERROR``."""
        return ("ok", "unknown", "FAILED", "ERROR")[int(self)]

    @property
    def search_text(self) -> str:
        """As a search (``nlmmap bmc``) reports it: ``none``, ``unknown``, ``violation`` or ``error``."""
        return ("none", "unknown", "violation", "error")[int(self)]

    @property
    def exit_code(self) -> int:
        """0 ok, 1 FAILED (a counterexample), 3 unknown (inconclusive), 4 ERROR (an engine bug)."""
        return (0, 3, 1, 4)[int(self)]

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict]) -> Verdict:
        """The most severe of ``verdicts`` (OK when there are none)."""
        return max(verdicts, default=cls.OK)
