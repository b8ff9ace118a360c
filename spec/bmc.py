"""``nlmmap bmc``: shortest counterexample traces by bounded model checking.

The system is unrolled from its initial state one step at a time (iterative deepening in one
incremental solver), so the first violation found is a shortest one. Each step picks one action
(a selector per step) with parameters shared by name between the actions; the post-state is
generated from the action's updates. States are those of a finite scope
(:mod:`nlmmap.spec.cells`): ring sizes (``StateVar(size=True)``) <= ``max_n``, arrays indexed by
unbounded integers (packet ids, CPUs) held in cells ``[0, S)`` with ``S`` = :data:`INDEX_SCOPE`
(or depth + 2) and one value elsewhere that no step changes (a step writing outside the cells is
not taken), and the system's scoped counters (which start at 0 and grow by at most one per step)
at most the number of steps taken. Other integers (capacities, lengths) are unbounded. Every
formula is quantifier-free there, which is what makes deep unrolling cheap.

One unrolling serves both classes of users, as in :mod:`nlmmap.spec.prove`: ``any`` properties
are checked on every trace, ``well-behaved`` ones on traces without an adversary step. Once a
depth is clean, its properties are asserted there: no shorter trace breaks them, so the next
depth's query starts from states known to satisfy them (for inductive properties, a one-step
argument). A depth the solver cannot decide is reported as inconclusive (``unknown``), never as
clean. With ``properties`` the search runs first on their cone-of-influence slice
(:mod:`nlmmap.spec.slicing`) and any candidate is confirmed on the full system.

A trace found is made readable (:mod:`nlmmap.spec.bmc_readable`), replayed in the spec's
interpreter (:mod:`nlmmap.spec.replay`; a trace it does not reproduce is an engine bug, verdict
ERROR, never shown as a counterexample), and read into a :class:`BmcResult`, rendered as a table
(:mod:`nlmmap.spec.tables`) and as ITF JSON (:mod:`nlmmap.spec.itf`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from .catalog import system_from_meta
from .cells import CellArray, CellEncoder, CellState, _z
from .expr import Count, Expr, Quant, free_vars
from .itf import make_trace
from .system import Action, System
from .tables import Column, layout, param_layout, trace_table
from .verdict import Verdict
from .z3enc import make_solver, size_vars

__all__ = ["BmcResult", "bmc", "format_trace", "trace_to_itf", "scoped_counters", "search_header", "INDEX_SCOPE",
           "system_from_meta"]

DEFAULT_SEED = 0
#: BMC scope: arrays indexed by unbounded integers (packet ids, CPUs) hold cells [0, INDEX_SCOPE)
#: and one value elsewhere (``nlmmap prove`` has no such bound). It grows to depth + 2 for deeper
#: searches, so that ids counted by the scoped counters stay inside it.
INDEX_SCOPE = 16


@dataclass(frozen=True)
class BmcResult:
    """Outcome of a search: a trace (states, actions, parameters) and the property it breaks, or
    none found up to ``depth``. ``verdict``: FAILED (a violation), OK (none to ``depth``) or
    UNKNOWN (inconclusive), printed as ``violation``, ``none``, ``unknown``."""

    system: str
    variant: tuple[str, ...]
    verdict: Verdict
    depth: int
    max_n: int
    violated: str | None = None
    kind: str | None = None
    user: str | None = None
    states: tuple[dict[str, Any], ...] = ()
    actions: tuple[str, ...] = ()
    picks: tuple[dict[str, Any], ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0
    per_depth_ms: tuple[float, ...] = ()
    seed: int = DEFAULT_SEED
    z3_version: str = field(default_factory=z3.get_full_version)
    reason: str = ""
    sliced: str = ""  # how the cone-of-influence slice searched, when one was used
    index_scope: int = INDEX_SCOPE
    scoped: tuple[str, ...] = ()
    columns: Mapping[str, Column] = field(default_factory=dict, compare=False, repr=False)
    param_columns: Mapping[tuple[str, str], Column] = field(default_factory=dict, compare=False, repr=False)

    @property
    def exit_code(self) -> int:
        """1 violation found, 0 none to the depth asked, 3 inconclusive, 4 engine error."""
        return self.verdict.exit_code

    def scope(self) -> str:
        """The finite scope searched, in words."""
        return scope_text(self.max_n, self.index_scope, self.scoped)

    @property
    def steps(self) -> int:
        """Length of the trace (0 without one)."""
        return len(self.actions) - 1 if self.actions else 0

    def text(self) -> str:
        """The outcome for people: the trace table and the violated property, or what was
        searched without a violation, or why it is inconclusive; then the slice note and summary."""
        if self.verdict is Verdict.FAILED:
            lines = [format_trace(self)]
        elif self.verdict is Verdict.OK:
            lines = [f"no violation up to depth {self.depth} with {self.scope()} ({self.ms / 1e3:.2f} s)"]
        elif self.verdict is Verdict.ERROR:
            lines = [f"ERROR: {self.reason}"]
        else:
            clean = f"no violation up to depth {self.depth - 1}, " if self.depth > 0 else ""
            lines = [f"inconclusive at depth {self.depth}: {clean}solver returned unknown ({self.reason})"]
        if self.sliced:
            lines.append(f"  ({self.sliced})")
        lines.append(f"nlmmap bmc: {self.verdict.search_text} in {self.ms / 1e3:.2f} s")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap bmc", "system": self.system, "variant": list(self.variant),
                "verdict": self.verdict.search_text, "depth": self.depth, "max_n": self.max_n,
                "property": self.violated, "kind": self.kind, "user": self.user, "steps": self.steps,
                "actions": [{"action": a, "params": p} for a, p in zip(self.actions, self.picks, strict=True)],
                "ms": round(self.ms, 1), "per_depth_ms": [round(x, 1) for x in self.per_depth_ms],
                "seed": self.seed, "z3": self.z3_version, "reason": self.reason, "sliced": self.sliced,
                "index_scope": self.index_scope, "scoped_counters": list(self.scoped), "scope": self.scope()}


def scope_text(max_n: int, index_scope: int, scoped: tuple[str, ...] | list[str]) -> str:
    """The finite scope of a search, in words (stated with every result)."""
    counters = f", {', '.join(scoped)} <= steps taken" if scoped else ""
    return (f"ring sizes <= {max_n}, integer-indexed arrays in cells [0, {index_scope}) "
            f"(no step writes outside){counters}")


def search_header(system: System, *, depth: int, max_n: int, seed: int = DEFAULT_SEED) -> str:
    """The line stating what a search covers (its scope), printed before it starts."""
    from .catalog import variant_names

    scope = scope_text(max_n, _index_scope(depth), scoped_counters(system))
    return (f"nlmmap bmc: system {system.name}, variant {variant_names(system) or ['default']}, depth <= {depth}, "
            f"{scope}, z3 {z3.get_full_version()}, seed {seed}")


def _index_scope(depth: int) -> int:
    return max(INDEX_SCOPE, depth + 2)


# --- search ---------------------------------------------------------------------------------------
class Unrolling:
    """States ``s0..sd`` of the scope and one action selector per step, in one incremental solver.

    Every action is present (the adversary's too): a step picks one (``sel``), with parameters
    shared by name between the actions (only the one taken constrains them). ``honest[k]`` says
    that none of the first ``k`` steps is the adversary's, which is how one unrolling serves both
    classes of users: properties of a well-behaved user are checked under it."""

    def __init__(self, system: System, actions: list[Action], max_n: int, timeout_ms: int, seed: int,
                 depth: int):
        self.system, self.actions, self.max_n = system, actions, max_n
        self.scoped = {n: depth for n in scoped_counters(system)}
        self.index_scope = _index_scope(depth)
        self.enc = CellEncoder(system, frames=max_n, index_range=(0, self.index_scope), bounds=self.scoped)
        self.solver = make_solver(timeout_ms=timeout_ms, seed=seed)
        self.timeout_ms = timeout_ms
        self.adversary = [i for i, a in enumerate(actions) if a.actor == "adversary"]
        self.states: list[CellState] = []
        self.sels: list[Any] = []
        self.params: list[list[dict[str, Any]]] = []
        self.sizes: list[Any] = []
        self.honest: list[Any] = [z3.BoolVal(True)]
        s0 = self._new_state()
        self.solver.add(self.enc.expr(system.init, s0), self.enc.expr(system.assumptions, s0))

    def _new_state(self) -> CellState:
        k = len(self.states)
        st = self.enc.fresh_state(f"s{k}")
        self.states.append(st)
        for n in size_vars(self.system):
            self.sizes.append(st[n])
            self.solver.add(st[n] <= self.max_n)
        for n in self.scoped:  # starts at 0 and grows by at most one per step
            self.solver.add(st[n] <= k)
        return st

    def extend(self) -> None:
        """Add one more step: a selector, the parameters, the next state, and ``honest``."""
        pre = self.states[-1]
        k = len(self.sels)
        post = self._new_state()
        sel = z3.Int(f"action@{k}")
        self.sels.append(sel)
        self.solver.add(0 <= sel, sel < len(self.actions))
        shared: dict[tuple[str, str], Any] = {}
        plist = []
        cases = []
        nxt: dict[str, Any] = {n: (dict(x.cells) if isinstance(x, CellArray) else x) for n, x in pre.terms.items()}
        for idx, a in enumerate(self.actions):
            params = {}
            for p in a.params:
                key = (p.name, p.sort)
                if key not in shared:
                    shared[key] = (z3.Int if p.sort == "int" else z3.Bool)(f"{p.name}@s{k}")
                params[p.name] = shared[key]
            plist.append(params)
            succ, inside = self.enc.successor(a, pre, params, post.tag)
            cond = [*self.enc.param_constraints(a, pre, params), *inside, self.enc.expr(a.guard, pre, params)]
            cases.append(z3.Implies(sel == idx, z3.And(*cond)))
            for n in a.modifies:
                new, old = succ[n], pre[n]
                if isinstance(new, CellArray):
                    cells = nxt[n]
                    for i, t in new.cells.items():
                        if t is not old.cells[i]:
                            cells[i] = z3.If(sel == idx, _z(t), _z(cells[i]))
                elif new is not old:
                    nxt[n] = z3.If(sel == idx, _z(new), _z(nxt[n]))
        self.params.append(plist)
        self.solver.add(*cases)
        for n, x in post.terms.items():
            if isinstance(x, CellArray):
                self.solver.add(*[x.cells[i] == _z(t) for i, t in nxt[n].items()], x.out == pre[n].out)
            else:
                self.solver.add(x == _z(nxt[n]))
        h = z3.Bool(f"honest@{k + 1}")
        self.solver.add(h == z3.And(self.honest[-1], *[sel != i for i in self.adversary]))
        self.honest.append(h)

    def expr(self, e: Expr, st: CellState, params: Mapping[str, Any] | None = None) -> Any:
        return self.enc.expr(e, st, params)


def scoped_counters(system: System) -> list[str]:
    """The integer state variables BMC bounds by the depth + 1: the system's declared
    ``scoped_counters``, or else the non-size integers used in quantifier bounds (a scope
    restriction, exact for counters that start at 0 and grow by at most one per step)."""
    if system.scoped_counters is not None:
        return sorted(system.scoped_counters)
    ints = {v.name for v in system.state if v.sort == "int"} - set(size_vars(system))
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, (Quant, Count)):
            found.update(free_vars(x.hi) & ints)
            walk(x.body)
        for a in getattr(x, "args", ()) or ():
            walk(a)
        for f in ("array", "index", "cond", "then", "other"):
            if hasattr(x, f):
                walk(getattr(x, f))

    for inv in system.invariants:
        walk(inv.formula)
    for a in system.actions:
        walk(a.guard)
    return sorted(found)


def _properties(system: System, properties: list[str] | None) -> tuple[list[tuple[str, str, Expr]],
                                                                         list[tuple[str, str, str, Expr]]]:
    """The invariants ``(name, user, formula)`` and step properties ``(name, user, action, formula)``
    searched (only ``properties`` if given). The system's proof aids (invariants the prover uses
    that the interpreter cannot evaluate, such as "ids not yet assigned carry no state") are
    searched too: in the scope they are quantifier-free, a violation of one is a real one, and once
    a depth has none they are asserted there like the others, which keeps each depth's query local."""
    want = set(properties) if properties is not None else None
    aids = system.proof_aids if want is None else ()
    invs = [(i.name, i.user, i.formula) for i in system.invariants + aids if want is None or i.name in want]
    steps = [(sp.name, sp.user, an, f) for sp in system.step_properties if want is None or sp.name in want
             for an, f in sp.per_action.items()]
    return invs, steps


def bmc(system: System, *, depth: int = 8, max_n: int = 3, timeout_ms: int = 60000, seed: int = DEFAULT_SEED,
        properties: list[str] | None = None, on_depth: Callable[[int, float], None] | None = None,
        slice_: bool = True, min_depth: int = 0) -> BmcResult:
    """Search for the shortest trace (at most ``depth`` steps, ring sizes <= ``max_n``) that breaks
    an invariant or step property of ``system`` (only ``properties`` if given). With
    ``properties`` the search first runs on the cone-of-influence slice (an over-approximation,
    :mod:`nlmmap.spec.slicing`): no violation there is none in the system; a violation there is
    confirmed by searching the full system, whose trace is the one reported."""
    if properties and slice_:
        from .slicing import slice_system

        small = slice_system(system, properties)
        res = bmc(small, depth=depth, max_n=max_n, timeout_ms=timeout_ms, seed=seed, properties=properties,
                  on_depth=on_depth, slice_=False)
        note = (f"cone-of-influence slice: {len(small.state)} of {len(system.state)} state variables, "
                f"{len(small.actions)} of {len(system.actions)} actions")
        if res.verdict is not Verdict.FAILED:
            return dataclasses.replace(
                res, sliced=note + " (an over-approximation: nothing there means nothing in the system)")
        # the slice over-approximates: the system has no violation shallower than the slice's
        full = bmc(system, depth=depth, max_n=max_n, timeout_ms=timeout_ms, seed=seed, properties=properties,
                   slice_=False, min_depth=res.depth)
        confirmed = " found a candidate; confirmed on the full system" if full.verdict is Verdict.FAILED \
            else " found a spurious candidate"
        return dataclasses.replace(full, sliced=note + confirmed, ms=full.ms + res.ms)
    from .catalog import variant_names

    head = {"system": system.name, "variant": tuple(variant_names(system)), "depth": depth, "max_n": max_n,
            "seed": seed, "index_scope": _index_scope(depth), "scoped": tuple(scoped_counters(system)),
            "columns": layout(system), "param_columns": param_layout(system)}
    t0 = time.perf_counter()
    per_depth: list[float] = []
    invs, steps = _properties(system, properties)
    u = Unrolling(system, list(system.actions), max_n, timeout_ms, seed, depth)
    names = [a.name for a in u.actions]
    for d in range(depth + 1):
        td = time.perf_counter()
        if d > 0:
            u.extend()
        bad: list[tuple[str, str, str, Any]] = []  # (name, kind, user, violated)
        if d >= min_depth:
            st = u.states[d]
            for name, user, f in invs:
                bad.append((name, "invariant", user, _honest(u, d, user, z3.Not(u.expr(f, st)))))
            for name, user, an, f in steps if d > 0 else ():
                if an in names:
                    idx = names.index(an)
                    v = z3.And(u.sels[d - 1] == idx, z3.Not(u.expr(f, u.states[d - 1], u.params[d - 1][idx])))
                    bad.append((name, "step", user, _honest(u, d - 1, user, v)))
        if bad:
            s = u.solver
            # one check per property, each under its own assumption literal (focused conflicts, and
            # a property found clean is asserted at once, which helps the next ones)
            groups: dict[str, list[tuple[str, str, str, Any]]] = {}
            for b in bad:
                groups.setdefault(b[0], []).append(b)
            r = z3.unsat
            for pname, g in groups.items():
                lit = z3.Bool(f"violation@{d}@{pname}")
                s.add(z3.Implies(lit, z3.Or(*[b[3] for b in g])))
                r = s.check(lit)
                if r != z3.unsat:
                    bad = g
                    break
                s.add(*[z3.Not(b[3]) for b in g])
            if r == z3.unknown:
                return BmcResult(**{**head, "depth": d}, verdict=Verdict.UNKNOWN, reason=s.reason_unknown(),
                                 per_depth_ms=tuple(per_depth), ms=(time.perf_counter() - t0) * 1e3)
            if r == z3.sat:
                from .bmc_readable import readable_model

                m = readable_model(u, s, d, lit)
                name, kind, user = next((b[0], b[1], b[2]) for b in bad
                                        if z3.is_true(m.eval(b[3], model_completion=True)))
                states, actions, picks, defaults = _read_trace(u, m, d)
                per_depth.append((time.perf_counter() - td) * 1e3)
                res = BmcResult(**{**head, "depth": d}, verdict=Verdict.FAILED, violated=name, kind=kind, user=user,
                                states=states, actions=actions, picks=picks, defaults=defaults,
                                per_depth_ms=tuple(per_depth), ms=(time.perf_counter() - t0) * 1e3)
                return _checked(res, system)
            # no trace of d steps breaks them (asserted at step d above), so the next depth's query
            # (is there a trace of d + 1 steps?) is one step from states known to satisfy them
        per_depth.append((time.perf_counter() - td) * 1e3)
        if on_depth:
            on_depth(d, per_depth[-1])
    return BmcResult(**head, verdict=Verdict.OK, per_depth_ms=tuple(per_depth), ms=(time.perf_counter() - t0) * 1e3)


def _checked(res: BmcResult, system: System) -> BmcResult:
    """``res`` if the spec's interpreter reproduces its trace, else an ERROR (an engine bug)."""
    from .replay import replay

    doc = trace_to_itf(res)
    rr = replay(doc, system=system)
    if rr.reproduced:
        return res
    aid = next((i for i in system.proof_aids if i.name == res.violated), None)
    if aid is not None and not rr.mismatches:  # the interpreter evaluates a proof aid on the last state
        from .cti import evaluate_finite
        from .replay import map_state_factory

        last = map_state_factory(system, res.states[-1], res.defaults)
        if not evaluate_finite(aid.formula, last.__getitem__, last):
            return res
    what = "; ".join([f"step {i}: {n} violated" for i, n in rr.violated] +
                     [f"step {i}: {n} differs" for i, n in rr.mismatches]) or "no property breaks"
    return dataclasses.replace(res, verdict=Verdict.ERROR,
                               reason=f"engine bug: the interpreter does not reproduce the trace for {res.violated} "
                                      f"({what})")


def _honest(u: Unrolling, k: int, user: str, violated: Any) -> Any:
    """A violation of a property of ``user``: for a well-behaved user, only on honest prefixes."""
    return violated if user == "any" else z3.And(u.honest[k], violated)


def _val(m: z3.ModelRef, t: Any) -> Any:
    v = m.eval(_z(t), model_completion=True)
    if z3.is_bool(v):
        return z3.is_true(v)
    return v.as_long()


def _read_trace(u: Unrolling, m: z3.ModelRef, d: int) -> tuple[tuple[dict[str, Any], ...], tuple[str, ...],
                                                                tuple[dict[str, Any], ...], dict[str, Any]]:
    """The trace of ``m``: states (arrays over their cells), actions, their parameters, and each
    array's value outside its cells (which no step of the scope changes)."""
    actions, picks = ["init"], [{}]
    for k in range(d):
        idx = _val(m, u.sels[k])
        actions.append(u.actions[idx].name)
        picks.append({n: _val(m, t) for n, t in u.params[k][idx].items()})
    states = tuple(u.enc.values(m, st) for st in u.states[: d + 1])
    return states, tuple(actions), tuple(picks), u.enc.defaults(m, u.states[0])


# --- output ---------------------------------------------------------------------------------------
def trace_to_itf(res: BmcResult) -> dict[str, Any]:
    """The trace as an ITF document (see :mod:`nlmmap.spec.itf`)."""
    meta = {"source": "nlmmap bmc", "system": res.system, "variant": list(res.variant), "invariant": res.violated,
            "kind": res.kind, "user": res.user, "seed": res.seed, "z3": res.z3_version, "max_n": res.max_n,
            "defaults": res.defaults, "description": f"{res.violated} violated after {res.steps} steps"}
    return make_trace(meta, list(res.states), list(res.actions), list(res.picks))


def format_trace(res: BmcResult) -> str:
    """The trace as a step table (:func:`nlmmap.spec.tables.trace_table`) and the property it breaks."""
    cols, pcols = res.columns, res.param_columns
    if not cols:
        system = system_from_meta({"system": res.system, "variant": list(res.variant)})
        cols, pcols = layout(system), param_layout(system)
    return (trace_table(res.states, res.actions, res.picks, cols, pcols)
            + f"\nviolated: {res.violated} ({res.kind}, user={res.user}) after {res.steps} steps")
