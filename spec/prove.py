"""``nlmmap prove``: every invariant inductive for every ring size, one z3 obligation at a time.

For a system and each of its invariants (the system's own, its strengthening invariants marked
``strengthening=True``, and its ``proof_aids``), the obligations are:

* **initiation**: ``assumptions and init => Inv``;
* **consecution**, for each action ``a``: ``assumptions and H(pre) and ranges(params) and
  guard_a(pre) => Inv(post_a)`` where ``H`` is the conjunction of the invariants of the same
  class, ``post_a`` is generated from ``a``'s updates (:func:`nlmmap.spec.z3enc.successor`), and
  the ring sizes are free ``Int`` variables (every N at once, N >= 1 whenever a ring exists);
  the system's ``run_bound``, if any, is assumed in the pre- and post-state;
* **step properties**: ``H(pre) and ranges and guard_a(pre) => property_a(pre)``;
* **count lemmas**: the induction obligations behind the abstract encoding of ``Count``
  (:data:`nlmmap.spec.z3enc.COUNT_LEMMAS`);
* **layout lemmas** (with the count lemmas): frames inside their block, disjoint, inside the ring
  and the mapping, for every geometry the kernel accepts
  (:func:`nlmmap.spec.protocol.geometry.prove_layout`).

Invariants with ``user="any"`` are proved with the adversary's actions present and assume only
``"any"`` invariants; ``user="well-behaved"`` ones are proved for the system without the
adversary's actions and may assume every invariant. A fresh solver with a fixed seed and its own
timeout is made for each obligation; ``unknown`` (timeout included) is its own verdict and never
counts as proved.

Each consecution and step obligation is first searched for a counterexample in a **small scope**
(ring sizes <= :data:`SCOPE_FRAMES`, integer variables and parameters in
``[-SCOPE_INT, SCOPE_INT]``), where bounded quantifiers and counts expand into finite formulas that
are exact under those bounds: the query is (nearly) quantifier-free and z3 decides it in
milliseconds, whereas building a model of the unbounded query is the part quantifier
instantiation may never finish. A model there is a model of the unbounded obligation (FAILED,
with a small CTI); none there proves nothing, and the unbounded obligation decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from .cells import CellEncoder
from .cti import Cti, cell_cti, check_cti, make_cti, minimize, small_ints
from .expr import Expr, free_vars, render
from .system import Action, Invariant, System
from .verdict import Verdict
from .z3enc import (
    Encoder,
    count_lemma_obligations,
    make_params,
    make_solver,
    param_constraints,
    size_vars,
    store_indices,
    successor,
)

__all__ = ["Verdict", "ObligationResult", "ProofReport", "prove_system", "prove_systems", "prove_default",
           "default_systems", "run_prove_cli", "proof_classes", "untouched", "range_ints", "SCOPE_FRAMES", "SCOPE_INT",
           "WIDE_FRAMES", "WIDE_INT"]

DEFAULT_TIMEOUT_MS = 5000
DEFAULT_SEED = 0
#: The small scope searched first for counterexamples (see the module docstring).
SCOPE_FRAMES = 3
SCOPE_INT = 8
#: The wider scope searched when the unbounded query is not decided or its model is not a CTI.
WIDE_FRAMES = 5
WIDE_INT = 64
#: At most this much of an obligation's budget goes to the small-scope search.
SCOPE_BUDGET_MS = 1000


@dataclass(frozen=True)
class ObligationResult:
    """One obligation: what was checked, the verdict, time, and (if FAILED) a CTI.

    ``untouched``: a consecution whose action writes none of the invariant's variables, proved by
    the frame condition alone (the invariant in the pre-state, the generated "everything else
    unchanged", nothing else). ``found``: where a CTI came from (a scope, or the unbounded query);
    ``check``: what the spec's interpreter said of it (:func:`nlmmap.spec.cti.check_cti`)."""

    system: str
    kind: str  # "lemma", "init", "consecution", "step"
    action: str | None
    property: str
    verdict: Verdict
    ms: float
    reason: str = ""
    cti: Cti | None = None
    strengthening: bool = False
    untouched: bool = False
    found: str = ""
    check: str = ""

    def line(self) -> str:
        """The one-line rendering, e.g. ``[sys] act preserves Inv ... ok (0.4 ms)``."""
        if self.kind == "lemma":
            head = f"lemma {self.property} ({self.action})"
        elif self.kind == "init":
            head = f"init establishes {self.property}"
        elif self.kind == "step":
            head = f"{self.action} satisfies {self.property}"
        else:
            head = f"{self.action} preserves {self.property}"
        notes = [f"{self.ms:.1f} ms"]
        if self.untouched:
            notes.append("untouched")
        if self.verdict is Verdict.FAILED and self.found:
            notes.append(f"CTI {self.found}, {self.check}")
        tail = f" [{self.reason}]" if self.reason and self.verdict in (Verdict.UNKNOWN, Verdict.ERROR) else ""
        mark = "  (strengthening)" if self.strengthening else ""
        return f"[{self.system}] {head} ... {self.verdict.text} ({', '.join(notes)}){tail}{mark}"

    def text(self) -> str:
        """The line, and under a FAILED one its counterexample to induction."""
        show = self.cti is not None and self.verdict is Verdict.FAILED
        return self.line() + ("\n" + self.cti.text() if show else "")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"system": self.system, "kind": self.kind, "action": self.action, "property": self.property,
                "verdict": self.verdict.text, "ms": self.ms, "reason": self.reason, "untouched": self.untouched,
                "strengthening": self.strengthening, "found": self.found, "check": self.check,
                "cti": self.cti.as_dict() if self.cti is not None and self.verdict is Verdict.FAILED else None}


@dataclass(frozen=True)
class ProofReport:
    """All obligations of a run, with the solver version, settings, the strengthening invariants
    and the run bounds the proofs assume (``(system, bound)``)."""

    results: tuple[ObligationResult, ...] = ()
    z3_version: str = field(default_factory=z3.get_full_version)
    seed: int = DEFAULT_SEED
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    total_ms: float = 0.0
    strengthening: tuple[str, ...] = ()
    run_bounds: tuple[tuple[str, str], ...] = ()

    @property
    def verdict(self) -> Verdict:
        """The worst verdict (OK when there are no obligations)."""
        return Verdict.worst(r.verdict for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 proved, 1 some obligation failed, 3 inconclusive (unknown, none failed), 4 engine error."""
        return self.verdict.exit_code

    @property
    def counts(self) -> dict[str, int]:
        """How many obligations have each verdict, by its text."""
        return {v.text: sum(r.verdict is v for r in self.results) for v in Verdict}

    @property
    def untouched(self) -> int:
        """How many proved obligations the frame condition alone discharged."""
        return sum(r.untouched and r.verdict is Verdict.OK for r in self.results)

    @property
    def slowest(self) -> ObligationResult | None:
        """The obligation that took longest."""
        return max(self.results, key=lambda r: r.ms, default=None)

    def summary(self) -> str:
        """The closing line, e.g. ``338 obligations: 338 proved, of which 203 untouched by the action;
        0 FAILED, 0 unknown in 1.59 s (slowest 7.1 ms) -> ok``."""
        c = self.counts
        err = f", {c['ERROR']} ERROR" if c["ERROR"] else ""
        slow = f" (slowest {self.slowest.ms:.1f} ms)" if self.slowest is not None else ""
        return (f"nlmmap prove: {len(self.results)} obligations: {c['ok']} proved, of which {self.untouched} "
                f"untouched by the action; {c['FAILED']} FAILED, {c['unknown']} unknown{err} in "
                f"{self.total_ms / 1e3:.2f} s{slow} -> {self.verdict.text}")

    def text(self) -> str:
        """Every obligation (CTIs under failed ones) and the summary."""
        return "\n".join([*(r.text() for r in self.results), self.summary()])

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        slow = self.slowest
        return {"tool": "nlmmap prove", "z3": self.z3_version, "seed": self.seed, "timeout_ms": self.timeout_ms,
                "verdict": self.verdict.text, "counts": self.counts, "untouched": self.untouched,
                "total_ms": round(self.total_ms, 1), "slowest_ms": round(slow.ms, 1) if slow else 0.0,
                "strengthening": list(self.strengthening),
                "run_bounds": [{"system": s, "bound": b} for s, b in self.run_bounds],
                "obligations": [r.as_dict() for r in self.results]}


# --- obligations ----------------------------------------------------------------------------------
def proof_classes(system: System) -> dict[str, tuple[list[Invariant], list[Action]]]:
    """For each user class: the invariants proved in it (the system's own and its proof aids)
    and the actions present (the adversary's only for ``any``)."""
    allinv = list(system.invariants) + list(system.proof_aids)
    anyinv = [i for i in allinv if i.user == "any"]
    honest = [a for a in system.actions if a.actor != "adversary"]
    return {"any": (anyinv, list(system.actions)), "well-behaved": (allinv, honest)}


def untouched(action: Action, goal: Expr) -> bool:
    """Whether ``action`` writes none of the free variables of ``goal`` (read off its ``modifies``)."""
    return not set(action.modifies) & free_vars(goal)


def _check(s: z3.Solver) -> tuple[Verdict, str]:
    r = s.check()
    if r == z3.unsat:
        return Verdict.OK, ""
    if r == z3.sat:
        return Verdict.FAILED, ""
    return Verdict.UNKNOWN, s.reason_unknown()


@dataclass
class _Hyps:
    """The assumptions and hypotheses of a class of obligations, encoded once in the pre-state of
    one encoding (every obligation has its own solver, so they share the pre-state's constants)."""

    enc: Any  # Encoder (unbounded) or CellEncoder (a scope)
    pre: Any
    facts: list[Any]
    scope: str = ""  # "" for the unbounded encoding, else e.g. "N <= 3"
    ints: int = 0


def _abstract_hyps(system: System, hyps: list[Invariant]) -> _Hyps:
    enc = Encoder(system)
    pre = enc.fresh_state("pre")
    return _Hyps(enc, pre, [enc.expr(system.assumptions, pre), *(enc.expr(i.formula, pre) for i in hyps)])


def _scope_hyps(system: System, hyps: list[Invariant], frames: int, ints: int, *, wide: bool) -> _Hyps:
    """The hypotheses in a finite scope: ring sizes <= ``frames`` (cells two beyond the ring on each
    side, for writes at sentinel indices), and integers in ``[-ints, ints]``: all of them (small),
    or only those bounding a quantifier or count (wide: other integers and parameters are free,
    so a counterexample at a u32 boundary is in scope)."""
    names = [v.name for v in system.constants + system.state if v.sort == "int" and not v.size]
    bounded = [n for n in names if n in range_ints(system)] if wide else names
    enc = CellEncoder(system, frames=frames, index_range=(-ints - 2, ints + 3), frame_cells=(-2, frames + 2),
                      bounds=dict.fromkeys(bounded, ints), lower=dict.fromkeys(bounded, -ints))
    pre = enc.fresh_state(f"pre{frames}")
    facts = [enc.expr(system.assumptions, pre), *(enc.expr(i.formula, pre) for i in hyps), *enc.scope_facts(pre)]
    return _Hyps(enc, pre, facts, f"in scope N <= {frames}", 0 if wide else ints)


def range_ints(system: System) -> set[str]:
    """The integer state variables (ring sizes excluded) in the bounds of a quantifier or count of
    the system (what a scope must bound for its formulas to expand into finite ones)."""
    from .expr import Count, Quant

    ints = {v.name for v in system.state + system.constants if v.sort == "int" and not v.size}
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, (Quant, Count)):
            found.update((free_vars(x.lo) | free_vars(x.hi)) & ints)
        for f in ("array", "index", "cond", "then", "other", "lo", "hi", "body"):
            if hasattr(x, f):
                walk(getattr(x, f))
        for a in getattr(x, "args", ()) or ():
            walk(a)

    exprs = [i.formula for i in system.invariants + system.proof_aids] + [system.init, system.assumptions]
    exprs += [f for sp in system.step_properties for f in sp.per_action.values()]
    for a in system.actions:
        exprs.append(a.guard)
        for u in a.updates:
            exprs += [getattr(u, f) for f in ("value", "index", "lo", "hi", "body") if hasattr(u, f)]
    if system.run_bound is not None:
        exprs.append(system.run_bound)
    for e in exprs:
        walk(e)
    return found


@dataclass
class _Query:
    """The assertions of one obligation (valid iff unsatisfiable) and the terms a CTI reads."""

    facts: list[Any]
    pre: Any
    post: Any
    params: dict[str, Any]


def _query(base: _Hyps, system: System, a: Action, goal: Expr, *, step: bool) -> _Query:
    """Consecution (``step=False``: ``goal`` in the post-state) or a step property (``goal`` in the
    pre-state, with the action's parameters), over the hypotheses ``base``."""
    pre = base.pre
    if isinstance(base.enc, CellEncoder):
        enc = base.enc
        params = enc.make_params(a, "pre")
        post, inside = (pre, []) if step else enc.successor(a, pre, params, f"post{base.scope}")
        facts = [*base.facts, *enc.param_constraints(a, pre, params), *inside, enc.expr(a.guard, pre, params)]
        if base.ints:
            facts += [z3.And(t >= -base.ints, t <= base.ints) for t in params.values() if t.sort() == z3.IntSort()]
        if not step:
            facts += enc.scope_facts(post, a.modifies)
    else:
        enc = base.enc.fork()
        params = make_params(a, "pre")
        post = pre if step else successor(enc, a, pre, params, "post")
        facts = [*base.facts, *param_constraints(enc, a, pre, params), enc.expr(a.guard, pre, params)]
    if not step and system.run_bound is not None:
        facts += [enc.expr(system.run_bound, pre), enc.expr(system.run_bound, post)]
    facts.append(z3.Not(enc.expr(goal, pre, params) if step else enc.expr(goal, post)))
    if not isinstance(base.enc, CellEncoder):
        facts += enc.count_facts(() if step else store_indices(enc, a, pre, params))
    return _Query(facts, pre, post, params)


def _frame_only(system: System, a: Action, goal: Expr, timeout_ms: int, seed: int) -> tuple[Verdict, str]:
    """The frame condition alone: ``goal`` in the pre-state, the generated post-state of ``a``,
    ``goal`` false there. Unsatisfiable when ``a`` leaves ``goal``'s variables unchanged."""
    enc = Encoder(system)
    pre = enc.fresh_state("pre")
    params = make_params(a, "pre")
    post = successor(enc, a, pre, params, "post")
    s = make_solver(timeout_ms=timeout_ms, seed=seed)
    s.add(enc.expr(goal, pre), z3.Not(enc.expr(goal, post)))
    s.add(*enc.count_facts())
    return _check(s)


@dataclass
class _Outcome:
    verdict: Verdict
    reason: str = ""
    cti: Cti | None = None
    untouched: bool = False
    found: str = ""
    check: str = ""


class _Classes:
    """The encoded hypotheses of each user class, built on first use."""

    def __init__(self, system: System):
        self.system = system
        self.classes = proof_classes(system)
        self._bases: dict[tuple[str, str], _Hyps] = {}

    def hyps(self, cls: str) -> list[Invariant]:
        return self.classes[cls][0]

    def base(self, cls: str, which: str) -> _Hyps:
        key = (cls, which)
        if key not in self._bases:
            hyps = self.hyps(cls)
            if which == "unbounded":
                self._bases[key] = _abstract_hyps(self.system, hyps)
            elif which == "small":
                self._bases[key] = _scope_hyps(self.system, hyps, SCOPE_FRAMES, SCOPE_INT, wide=False)
            else:
                self._bases[key] = _scope_hyps(self.system, hyps, WIDE_FRAMES, WIDE_INT, wide=True)
        return self._bases[key]


def _decide(system: System, a: Action, goal: Expr, classes: _Classes, cls: str, *, step: bool, timeout_ms: int,
            seed: int) -> _Outcome:
    """One consecution or step obligation (see the module docstring): the frame condition alone
    for an untouched one; else the small scope, the unbounded query, then (undecided) a wider scope.
    Every counterexample is checked by the interpreter first."""
    t0 = time.perf_counter()
    left = lambda: max(1, int(timeout_ms - (time.perf_counter() - t0) * 1e3))  # noqa: E731
    if not step and untouched(a, goal):
        v, why = _frame_only(system, a, goal, left(), seed)
        if v is Verdict.OK:
            return _Outcome(Verdict.OK, untouched=True)
    hyps = [(i.name, i.formula) for i in classes.hyps(cls)]
    sizes = size_vars(system)
    small_budget = max(1, min(SCOPE_BUDGET_MS, timeout_ms // 4))
    out = _in_scope(system, a, goal, classes.base(cls, "small"), hyps, step, small_budget, seed)
    if out is not None:
        return out
    wide_reserve = max(1, timeout_ms // 5)
    base = classes.base(cls, "unbounded")
    q = _query(base, system, a, goal, step=step)
    s = make_solver(timeout_ms=max(1, left() - wide_reserve), seed=seed)
    s.add(*q.facts)
    v, why = _check(s)
    if v is Verdict.OK:
        return _Outcome(Verdict.OK)
    reason = why
    if v is Verdict.FAILED:
        states = [q.pre] if step else [q.pre, q.post]
        m = minimize(s, [q.pre[x] for x in sizes], small=small_ints(system, states, q.params))
        cti = make_cti(system, m, q.pre, q.post, a, q.params, goal)
        chk = check_cti(system, cti, hyps, goal, step=step)
        if chk.confirmed:
            return _Outcome(Verdict.FAILED, cti=cti, found="from the unbounded query", check=chk.text())
        reason = "the unbounded query is satisfiable, but its model is no counterexample the interpreter confirms " \
                 "(counts are abstracted)"
    out = _in_scope(system, a, goal, classes.base(cls, "wide"), hyps, step, left(), seed)
    if out is not None:
        return out
    return _Outcome(Verdict.UNKNOWN, reason or "no counterexample in the scopes")


def _in_scope(system: System, a: Action, goal: Expr, base: _Hyps, hyps: list[tuple[str, Expr]], step: bool,
              budget_ms: int, seed: int) -> _Outcome | None:
    """A counterexample in the finite scope of ``base`` (checked by the interpreter: FAILED, or
    ERROR if it disagrees), or None when there is none there or the budget runs out."""
    q = _query(base, system, a, goal, step=step)
    s = make_solver(timeout_ms=budget_ms, seed=seed)
    s.add(*q.facts)
    if s.check() != z3.sat:
        return None
    states = [q.pre] if step else [q.pre, q.post]
    enc: CellEncoder = base.enc
    shown = free_vars(goal) | free_vars(a.guard) | set(a.modifies)
    m = minimize(s, [q.pre[x] for x in size_vars(system)], small=_cell_ints(system, states, q.params, q.pre, shown))
    cti = cell_cti(system, enc, m, q.pre, q.post, a, q.params, goal)
    chk = check_cti(system, cti, hyps, goal, step=step)
    if not chk.confirmed:
        return _Outcome(Verdict.ERROR, f"engine bug: a counterexample {base.scope} that {chk.text()}", cti,
                        found=base.scope, check=chk.text())
    return _Outcome(Verdict.FAILED, cti=cti, found=base.scope, check=chk.text())


def _cell_ints(system: System, states: list[Any], params: Mapping[str, Any], pre: Any = None,
               shown: set[str] | frozenset[str] = frozenset()) -> list[Any]:
    """The integers of a scope CTI to keep small: scalars, parameters, and the pre-state cells of
    the integer arrays the CTI shows."""
    out = [st[v.name] for st in states for v in system.state + system.constants if v.sort == "int"]
    out += [t for t in params.values() if t.sort() == z3.IntSort()]
    if pre is not None:
        for v in system.state + system.constants:
            if v.sort == "int_array" and v.name in shown:
                out += [c for c in pre[v.name].cells.values() if not isinstance(c, int)]
    return out


def prove_system(system: System, *, timeout_ms: int = DEFAULT_TIMEOUT_MS, seed: int = DEFAULT_SEED,
                 on_result: Callable[[ObligationResult], None] | None = None,
                 only: Iterable[str] | None = None, lemmas: bool = True,
                 actions: Iterable[str] | None = None) -> list[ObligationResult]:
    """Discharge every obligation of ``system``; ``on_result`` sees each result as it comes.

    ``only`` restricts to the named invariants/step properties, ``actions`` to the obligations of
    the named actions (initiation is then skipped). Returns the results in order."""
    acts = set(actions) if actions is not None else None
    results: list[ObligationResult] = []
    want = set(only) if only is not None else None

    def emit(r: ObligationResult) -> None:
        results.append(r)
        if on_result:
            on_result(r)

    if lemmas:
        for name, case, hyps, goal in count_lemma_obligations():
            s = make_solver(timeout_ms=timeout_ms, seed=seed)
            s.add(*hyps)
            s.add(z3.Not(goal))
            t0 = time.perf_counter()
            v, why = _check(s)
            emit(ObligationResult(system.name, "lemma", f"induction {case}", name, v,
                                  (time.perf_counter() - t0) * 1e3, why))
        from .protocol.geometry import prove_layout  # the ring layout: every accepted geometry (17.1-17.3)

        for r in prove_layout(timeout_ms=timeout_ms, seed=seed):
            emit(r)

    classes = _Classes(system)

    def timed(kind: str, a: Action, prop: str, goal: Expr, cls: str, strong: bool) -> None:
        t0 = time.perf_counter()
        o = _decide(system, a, goal, classes, cls, step=(kind == "step"), timeout_ms=timeout_ms, seed=seed)
        emit(ObligationResult(system.name, kind, a.name, prop, o.verdict, (time.perf_counter() - t0) * 1e3,
                              o.reason, o.cti, strong, o.untouched, o.found, o.check))

    for cls, (hyp_invs, cls_actions) in classes.classes.items():
        goals = [i for i in hyp_invs if i.user == cls and (want is None or i.name in want)]
        for inv in goals:
            if acts is None:
                enc = Encoder(system)
                st = enc.fresh_state("init")
                s = make_solver(timeout_ms=timeout_ms, seed=seed)
                s.add(enc.expr(system.assumptions, st), enc.expr(system.init, st))
                s.add(z3.Not(enc.expr(inv.formula, st)))
                s.add(*enc.count_facts())
                t0 = time.perf_counter()
                v, why = _check(s)
                emit(ObligationResult(system.name, "init", None, inv.name, v, (time.perf_counter() - t0) * 1e3,
                                      why, strengthening=inv.strengthening))
            for a in cls_actions:
                if acts is None or a.name in acts:
                    timed("consecution", a, inv.name, inv.formula, cls, inv.strengthening)
    for sp in system.step_properties:
        if want is not None and sp.name not in want:
            continue
        for aname, prop in sp.per_action.items():
            if acts is None or aname in acts:
                timed("step", system.action(aname), sp.name, prop, sp.user, False)
    return results


def prove_systems(systems: Iterable[System], *, timeout_ms: int = DEFAULT_TIMEOUT_MS, seed: int = DEFAULT_SEED,
                  on_result: Callable[[ObligationResult], None] | None = None,
                  only: Iterable[str] | None = None) -> ProofReport:
    """Prove every obligation of ``systems`` (the count lemmas once, with the first); options as
    :func:`prove_system`."""
    systems = list(systems)
    t0 = time.perf_counter()
    results: list[ObligationResult] = []
    for i, sysm in enumerate(systems):
        results += prove_system(sysm, timeout_ms=timeout_ms, seed=seed, on_result=on_result, only=only,
                                lemmas=(i == 0))
    strong = sorted({i.name for s in systems for i in s.invariants + s.proof_aids if i.strengthening})
    bounds = tuple((s.name, render(s.run_bound)) for s in systems if s.run_bound is not None)
    return ProofReport(tuple(results), seed=seed, timeout_ms=timeout_ms, total_ms=(time.perf_counter() - t0) * 1e3,
                       strengthening=tuple(strong), run_bounds=bounds)


def prove_default(**kw: Any) -> ProofReport:
    """Prove the systems ``nlmmap prove`` checks by default
    (:func:`nlmmap.spec.catalog.default_proof_systems`); keyword options as :func:`prove_systems`."""
    from .catalog import default_proof_systems

    return prove_systems(default_proof_systems(), **kw)


def default_systems() -> list[System]:
    """The systems ``nlmmap prove`` checks by default (:func:`nlmmap.spec.catalog.default_proof_systems`)."""
    from .catalog import default_proof_systems

    return default_proof_systems()


def run_prove_cli(systems: Iterable[System], *, json_out: bool, out: Any, err: Any,
                  timeout_ms: int = DEFAULT_TIMEOUT_MS, seed: int = DEFAULT_SEED,
                  only: Iterable[str] | None = None) -> int:
    """``nlmmap prove`` on ``systems`` as one call (what ``nlmmap verify`` runs): the settings, one
    flushed line per obligation (a CTI under a FAILED one) and the summary on ``err``, the JSON
    document on ``out`` when ``json_out``; returns the exit code (0, 1, 3, 4)."""

    def write(text: str) -> None:
        err.write(text + "\n")
        err.flush()

    systems = list(systems)
    write(f"nlmmap prove: z3 {z3.get_full_version()}, seed {seed}, timeout {timeout_ms} ms per obligation")
    for sysm in systems:
        if sysm.run_bound is not None:
            write(f"[{sysm.name}] proofs cover runs with {render(sysm.run_bound)} (a prefix-closed bound)")
    rep = prove_systems(systems, timeout_ms=timeout_ms, seed=seed, on_result=lambda r: write(r.text()), only=only)
    write(rep.summary())
    if json_out:
        import json

        out.write(json.dumps(rep.as_dict(), sort_keys=True) + "\n")
    return rep.exit_code
