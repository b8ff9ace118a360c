"""Making a violating trace readable before it is shown: a second, bounded pass over the model.

A shortest trace found by :func:`nlmmap.spec.bmc.bmc` may carry any values the solver liked. Within
:data:`READABLE_BUDGET_S` (each check bounded by what is left, so the pass never hangs), the
solver is asked, keeping the trace's length, for the fewest frames first (every ring size at most
``cap`` for the smallest ``cap`` still satisfiable), then for small parameters and an initial state
whose arrays are constant (tight bounds first, then looser). A check that runs out of time keeps
the trace found so far.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import z3

from .z3enc import z3_sort

if TYPE_CHECKING:  # pragma: no cover
    from .bmc import Unrolling

__all__ = ["readable_model", "READABLE_BUDGET_S"]

READABLE_BUDGET_S = 1.5  # time spent making a found trace readable, at most (each check bounded)


def readable_model(u: Unrolling, s: z3.Solver, d: int) -> z3.ModelRef:
    """The most readable model of ``s`` (a satisfiable query over ``u``'s first ``d`` steps) that
    the budget allows; ``s`` is left as it was (assertions and timeout)."""
    m = s.model()
    pushed = False
    deadline = time.perf_counter() + READABLE_BUDGET_S

    def check() -> z3.CheckSatResult:
        left_ms = int((deadline - time.perf_counter()) * 1000)
        if left_ms <= 50:
            return z3.unknown
        s.set("timeout", left_ms)
        return s.check()

    for cap in range(0, u.max_n):
        s.push()
        s.add(*[x <= cap for x in u.sizes])
        if check() == z3.sat:
            m, pushed = s.model(), True
            break
        s.pop()
    for lim in (8, 64):  # tight first, then looser; keep the first that is still satisfiable
        nice = []
        for k in range(d):
            for plist in u.params[k]:
                for t in plist.values():
                    if t.sort() == z3.IntSort():
                        nice.append(z3.And(t >= 0, t <= lim))
        s0 = u.states[0]
        for v in u.system.state + u.system.constants:
            t = s0[v.name]
            if v.sort == "int":
                nice.append(z3.And(t >= 0, t <= lim))
            elif v.sort.endswith("array"):
                dflt = z3.FreshConst(z3_sort(v.sort).range(), f"default_{v.name}")
                nice.append(t == z3.K(z3.IntSort(), dflt))
                if v.sort == "int_array":
                    nice.append(dflt == 0 if lim == 8 else z3.And(dflt >= -lim, dflt <= lim))
        s.push()
        s.add(*nice)
        r = check()
        if r == z3.sat:
            m = s.model()
        s.pop()
        if r == z3.sat:
            break
    if pushed:
        s.pop()
    s.set("timeout", u.timeout_ms)
    return m
