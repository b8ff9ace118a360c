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
  (:data:`nlmmap.spec.z3enc.COUNT_LEMMAS`).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import z3

from .cti import Cti, make_cti, minimize, small_ints
from .expr import Expr, free_vars, render
from .system import Action, Invariant, System
from .verdict import Verdict
from .z3enc import (
    Encoder,
    SymState,
    count_lemma_obligations,
    make_params,
    make_solver,
    param_constraints,
    range_conditions,
    size_vars,
    store_indices,
    successor,
)

__all__ = ["Verdict", "ObligationResult", "ProofReport", "prove_system", "prove_systems", "prove_default",
           "proof_classes", "SCOPE_FRAMES", "SCOPE_INT"]

DEFAULT_TIMEOUT_MS = 5000
DEFAULT_SEED = 0
#: The small scope searched first for counterexamples (see the module docstring).
SCOPE_FRAMES = 3
SCOPE_INT = 8
#: At most this much of an obligation's budget goes to the small-scope search.
SCOPE_BUDGET_MS = 1000


@dataclass(frozen=True)
class ObligationResult:
    """One obligation: what was checked, the verdict, time, and (if FAILED) a CTI."""

    system: str
    kind: str  # "lemma", "init", "consecution", "step"
    action: str | None
    property: str
    verdict: Verdict
    ms: float
    reason: str = ""
    cti: Cti | None = None
    strengthening: bool = False

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
        tail = f" [{self.reason}]" if self.reason and self.verdict is Verdict.UNKNOWN else ""
        mark = "  (strengthening)" if self.strengthening else ""
        return f"[{self.system}] {head} ... {self.verdict.text} ({self.ms:.1f} ms){tail}{mark}"

    def text(self) -> str:
        """The line, and under a FAILED one its counterexample to induction."""
        return self.line() + ("\n" + self.cti.text() if self.cti is not None else "")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"system": self.system, "kind": self.kind, "action": self.action, "property": self.property,
                "verdict": self.verdict.text, "ms": self.ms, "reason": self.reason,
                "cti": self.cti.as_dict() if self.cti is not None else None}


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
        """0 proved, 1 some obligation failed, 3 inconclusive (unknown, none failed)."""
        return self.verdict.exit_code

    @property
    def counts(self) -> dict[str, int]:
        """How many obligations have each verdict, by its text."""
        return {v.text: sum(r.verdict is v for r in self.results) for v in Verdict}

    def summary(self) -> str:
        """The closing line, e.g. ``338 obligations: 338 ok, 0 FAILED, 0 unknown in 1.59 s -> ok``."""
        c = self.counts
        return (f"nlmmap prove: {len(self.results)} obligations: {c['ok']} ok, {c['FAILED']} FAILED, "
                f"{c['unknown']} unknown in {self.total_ms / 1e3:.2f} s -> {self.verdict.text}")

    def text(self) -> str:
        """Every obligation (CTIs under failed ones) and the summary."""
        return "\n".join([*(r.text() for r in self.results), self.summary()])

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap prove", "z3": self.z3_version, "seed": self.seed, "timeout_ms": self.timeout_ms,
                "verdict": self.verdict.text, "counts": self.counts, "total_ms": round(self.total_ms, 1),
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


def _check(s: z3.Solver) -> tuple[Verdict, str]:
    r = s.check()
    if r == z3.unsat:
        return Verdict.OK, ""
    if r == z3.sat:
        return Verdict.FAILED, ""
    return Verdict.UNKNOWN, s.reason_unknown()


@dataclass
class _Query:
    """The assertions of one obligation (valid iff unsatisfiable) and the terms a CTI reads."""

    facts: list[Any]
    pre: SymState
    post: SymState
    params: dict[str, Any]


@dataclass
class _Hyps:
    """The assumptions and hypotheses of a class of obligations, encoded once in the pre-state
    (every obligation has its own solver, so they share the pre-state's constants)."""

    enc: Encoder
    pre: SymState
    facts: list[Any]


def _hyps(system: System, hyps: list[Invariant], scope: bool) -> _Hyps:
    if scope:
        ints = {v.name: SCOPE_INT for v in system.constants + system.state if v.sort == "int" and not v.size}
        enc = Encoder(system, count_mode="unrolled", unroll_bound=SCOPE_FRAMES, scoped=ints)
    else:
        enc = Encoder(system)
    pre = enc.fresh_state("pre")
    facts = [enc.expr(system.assumptions, pre), *(enc.expr(i.formula, pre) for i in hyps)]
    if scope:
        facts += _scope_bounds(system, pre, [v.name for v in system.constants + system.state])
    return _Hyps(enc, pre, facts)


def _query(base: _Hyps, system: System, a: Action, goal: Expr, *, step: bool) -> _Query:
    """Consecution (``step=False``: ``goal`` in the post-state) or a step property (``goal`` in the
    pre-state, with the action's parameters), over the hypotheses ``base`` (abstract or small-scope)."""
    enc, pre = base.enc.fork(), base.pre
    params = make_params(a, "pre")
    post = pre if step else successor(enc, a, pre, params, "post")
    facts = [*base.facts, *param_constraints(enc, a, pre, params), enc.expr(a.guard, pre, params)]
    if not step and system.run_bound is not None:
        facts += [enc.expr(system.run_bound, pre), enc.expr(system.run_bound, post)]
    facts.append(z3.Not(enc.expr(goal, pre, params) if step else enc.expr(goal, post)))
    if enc.count_mode == "abstract":
        facts += enc.count_facts(() if step else store_indices(enc, a, pre, params))
    else:
        facts += range_conditions(enc, a, pre, params) + enc.side
        facts += [] if step else _scope_bounds(system, post, a.modifies)
        facts += [z3.And(t >= -SCOPE_INT, t <= SCOPE_INT) for t in params.values() if t.sort() == z3.IntSort()]
    return _Query(facts, pre, post, params)


def _scope_bounds(system: System, st: SymState, names: Iterable[str]) -> list[Any]:
    """The small scope in state ``st`` for the variables ``names``: ring sizes <= SCOPE_FRAMES,
    integers in [-SCOPE_INT, SCOPE_INT]."""
    out = []
    for n in names:
        v = system.var(n)
        if v.size:
            out.append(st[n] <= SCOPE_FRAMES)
        elif v.sort == "int":
            out.append(z3.And(st[n] >= -SCOPE_INT, st[n] <= SCOPE_INT))
    return out


def _decide(system: System, a: Action, goal: Expr, bases: tuple[_Hyps, _Hyps], *, step: bool, timeout_ms: int,
            seed: int) -> tuple[Verdict, str, Cti | None]:
    """Small scope first (a counterexample there is one of the obligation), then the unbounded
    obligation; a FAILED verdict comes with its minimized CTI."""
    sizes = size_vars(system)
    scope_ms = max(1, min(SCOPE_BUDGET_MS, timeout_ms // 4))
    plan = list(zip(bases, (scope_ms, timeout_ms), strict=True))
    if not step and not set(a.modifies) & free_vars(goal):
        plan = plan[1:]  # the action leaves the goal's variables alone: it holds as a hypothesis
    for base, budget in plan:
        q = _query(base, system, a, goal, step=step)
        s = make_solver(timeout_ms=budget, seed=seed)
        s.add(*q.facts)
        v, why = _check(s)
        if v is Verdict.FAILED:
            states = [q.pre] if step else [q.pre, q.post]
            m = minimize(s, [q.pre[x] for x in sizes], small=small_ints(system, states, q.params))
            return v, why, make_cti(system, m, q.pre, q.post, a, q.params, goal)
        if base.enc.count_mode == "abstract":
            return v, why, None
    raise AssertionError("unreachable")  # pragma: no cover


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

    classes = proof_classes(system)
    bases: dict[str, tuple[_Hyps, _Hyps]] = {}

    def timed(kind: str, a: Action, prop: str, goal: Expr, cls: str, strong: bool) -> None:
        t0 = time.perf_counter()
        if cls not in bases:
            bases[cls] = (_hyps(system, classes[cls][0], True), _hyps(system, classes[cls][0], False))
        v, why, cti = _decide(system, a, goal, bases[cls], step=(kind == "step"), timeout_ms=timeout_ms, seed=seed)
        emit(ObligationResult(system.name, kind, a.name, prop, v, (time.perf_counter() - t0) * 1e3, why, cti,
                              strong))

    for cls, (hyp_invs, cls_actions) in classes.items():
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
