"""``nlmmap prove``: every invariant inductive for every ring size, one z3 obligation at a time.

For a system and each of its invariants (the protocol's own and the strengthening invariants
marked ``strengthening=True``), the obligations are:

* **initiation**: ``assumptions and init => Inv``;
* **consecution**, for each action ``a``: ``assumptions and H(pre) and ranges(params) and
  guard_a(pre) => Inv(post_a)`` where ``H`` is the conjunction of the invariants of the same
  class, ``post_a`` is generated from ``a``'s updates (:func:`nlmmap.spec.z3enc.successor`), and
  the ring sizes are free ``Int`` variables (every N at once, N >= 1 whenever a ring exists);
* **step properties**: ``H(pre) and ranges and guard_a(pre) => property_a(pre)``;
* **count lemmas**: the induction obligations behind the abstract encoding of ``Count``
  (:data:`nlmmap.spec.z3enc.COUNT_LEMMAS`).

Invariants with ``user="any"`` are proved with the adversary's actions present and assume only
``"any"`` invariants; ``user="well-behaved"`` ones are proved for the system without the
adversary's actions and may assume every invariant. A fresh solver with a fixed seed and its own
timeout is made for each obligation; ``unknown`` (timeout included) is its own verdict and never
counts as proved. A failed consecution obligation yields a counterexample to induction (CTI),
minimized to the fewest frames.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import z3

from .expr import Expr, free_vars, render
from .system import Action, Invariant, System
from .z3enc import (
    Encoder,
    SymState,
    count_lemma_obligations,
    make_params,
    make_solver,
    param_constraints,
    size_vars,
    store_indices,
    successor,
)

__all__ = ["Verdict", "ObligationResult", "ProofReport", "prove_system", "prove_default", "default_systems",
           "run_prove_cli", "model_value", "state_values", "proof_aids", "format_cti"]

DEFAULT_TIMEOUT_MS = 5000
DEFAULT_SEED = 0


class Verdict(enum.IntEnum):
    """Outcome of one obligation, ordered by severity (the worst decides the exit status)."""

    OK = 0
    UNKNOWN = 1
    FAILED = 2

    @property
    def text(self) -> str:
        """``ok``, ``unknown`` or ``FAILED`` (as printed)."""
        return {0: "ok", 1: "unknown", 2: "FAILED"}[int(self)]


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
    cti: dict[str, Any] | None = None

    def line(self) -> str:
        """The one-line rendering, e.g. ``tx_copy preserves TxActsOnValidated ... ok (0.4 ms)``."""
        if self.kind == "lemma":
            head = f"lemma {self.property} ({self.action})"
        elif self.kind == "init":
            head = f"init establishes {self.property}"
        elif self.kind == "step":
            head = f"{self.action} satisfies {self.property}"
        else:
            head = f"{self.action} preserves {self.property}"
        tail = f" [{self.reason}]" if self.reason and self.verdict is Verdict.UNKNOWN else ""
        return f"[{self.system}] {head} ... {self.verdict.text} ({self.ms:.1f} ms){tail}"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        d = asdict(self)
        d["verdict"] = self.verdict.text
        return d


@dataclass
class ProofReport:
    """All obligations of a run, with the solver version and settings."""

    results: list[ObligationResult] = field(default_factory=list)
    z3_version: str = field(default_factory=z3.get_full_version)
    seed: int = DEFAULT_SEED
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    total_ms: float = 0.0

    @property
    def verdict(self) -> Verdict:
        """The worst verdict (OK when there are no obligations)."""
        return max((r.verdict for r in self.results), default=Verdict.OK)

    @property
    def exit_code(self) -> int:
        """0 proved, 1 some obligation failed, 3 inconclusive (unknown, none failed)."""
        return {Verdict.OK: 0, Verdict.FAILED: 1, Verdict.UNKNOWN: 3}[self.verdict]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        counts = {v.text: sum(r.verdict is v for r in self.results) for v in Verdict}
        return {"tool": "nlmmap prove", "z3": self.z3_version, "seed": self.seed, "timeout_ms": self.timeout_ms,
                "verdict": self.verdict.text, "counts": counts, "total_ms": round(self.total_ms, 1),
                "obligations": [r.as_dict() for r in self.results]}


# --- model reading ------------------------------------------------------------------------------
def model_value(m: z3.ModelRef, term: Any, sort: str, domain: Iterable[int] = ()) -> Any:
    """Python value of ``term`` in model ``m``: int, bool, or ``{index: value}`` over ``domain``."""
    if sort == "int":
        return m.eval(term, model_completion=True).as_long()
    if sort == "bool":
        return z3.is_true(m.eval(term, model_completion=True))
    out = {}
    for k in domain:
        v = m.eval(z3.Select(term, k), model_completion=True)
        out[k] = z3.is_true(v) if sort == "bool_array" else v.as_long()
    return out


def state_values(system: System, m: z3.ModelRef, st: SymState, names: Iterable[str],
                 domains: dict[str, list[int]]) -> dict[str, Any]:
    """Values of the variables ``names`` of ``st`` in ``m`` (arrays over ``domains[name]``)."""
    out = {}
    for n in names:
        v = system.var(n)
        out[n] = model_value(m, st[n], v.sort, domains.get(n, []))
    return out


def _array_domains(system: System, m: z3.ModelRef, states: list[SymState],
                   extra_ints: Iterable[Any] = ()) -> dict[str, list[int]]:
    """Indices worth showing for each array: ``[0, N)`` of the ring it belongs to (``rx_*`` arrays
    use ``rx_frame_nr``, ``tx_*`` ``tx_frame_nr``), the largest N over ``states``, capped at 16."""
    sizes: dict[str, int] = {}
    for sv in size_vars(system):
        prefix = sv.split("_", 1)[0]
        sizes[prefix] = min(16, max(max(0, m.eval(s[sv], model_completion=True).as_long()) for s in states))
    # other arrays (packet ids, CPUs) are shown up to the largest small integer in play
    small = [max(sizes.values(), default=0) - 1]
    points: set[int] = set()  # every integer in play, also when large: an index the action uses
    for st in states:
        for v in system.state + system.constants:
            if v.sort == "int":
                x = m.eval(st[v.name], model_completion=True).as_long()
                if 0 <= x <= 16:
                    small.append(x)
                elif x > 16:
                    points.add(x)
    for t in extra_ints:
        x = m.eval(t, model_completion=True)
        if z3.is_int_value(x) and 0 <= x.as_long() <= 16:
            small.append(x.as_long())
        elif z3.is_int_value(x) and x.as_long() > 16:
            points.add(x.as_long())
    doms = {}
    for v in system.state + system.constants:
        if v.sort.endswith("array"):
            prefix = v.name.split("_", 1)[0]
            if prefix in sizes:
                doms[v.name] = list(range(sizes[prefix]))
            else:
                doms[v.name] = sorted(set(range(max(small) + 1)) | points)
    return doms


# --- obligations ----------------------------------------------------------------------------------
def proof_aids(system: System) -> tuple[Invariant, ...]:
    """Strengthening invariants that only the prover uses, because they quantify over every
    packet id (a range the executable model cannot loop over): proved inductive like the others.

    The queue service: ids above ``id_seq`` were never queued, seen or verdicted (true initially
    by ``init``'s own quantifier over all ids, and no action writes above ``id_seq + 1``)."""
    from .expr import and_, forall, not_, var

    if system.name != "queue":
        return ()
    seen, verdicted, queued, id_seq = var("seen"), var("verdicted"), var("queued"), var("id_seq")
    tail = forall(id_seq + 1, ID_LIMIT, lambda x: and_(not_(seen[x]), not_(verdicted[x]), not_(queued[x])), "z")
    return (Invariant("QueueIdsAboveSeqUnused", tail, "ids not yet assigned carry no state", "12.2",
                      user="well-behaved", strengthening=True),)


#: The queue's ``init`` clears the per-id arrays for ids below 2**62 (a bounded quantifier), so the
#: proofs of the queue service cover runs that assign fewer than 2**62 - 1 ids (real ids are u32).
ID_LIMIT = 1 << 62


def run_bounds(system: System) -> Expr | None:
    """A prefix-closed bound on the runs a proof covers (asserted in the pre- and post-state of each
    consecution obligation, so the invariants are proved for every state of every run that stays
    within it), or None. Only the queue service has one: ``id_seq < 2**62 - 1``."""
    from .expr import var

    if system.name != "queue":
        return None
    return var("id_seq") < ID_LIMIT - 1


def _classes(system: System) -> dict[str, tuple[list[Invariant], list[Action]]]:
    """For each user class: the invariants proved in it (the system's own and the proof aids) and
    the actions present."""
    allinv = list(system.invariants) + list(proof_aids(system))
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


def _small_ints(system: System, states: list[SymState], params: Mapping[str, Any]) -> list[Any]:
    """The integer terms of a CTI (int state variables, int parameters) to keep small."""
    out = [st[v.name] for st in states for v in system.state + system.constants if v.sort == "int"]
    return out + [t for t in params.values() if t.sort() == z3.IntSort()]


def _minimize(s: z3.Solver, sizes: list[Any], budget_s: float = 2.0, small: list[Any] = ()) -> z3.ModelRef:
    """Fewest frames: lower the sum of the ring sizes while still satisfiable (within a budget),
    among models whose integers (ids, counters, parameters) lie in [-16, 16] when there are such
    models, so that every index the counterexample needs shows in its table."""
    m = s.model()
    if small:
        s.push()
        s.add(*[z3.And(t >= -16, t <= 16) for t in small])
        if s.check() == z3.sat:
            m = _fewest_frames(s, sizes, budget_s, s.model())
        s.pop()
        return m
    return _fewest_frames(s, sizes, budget_s, m)


def _fewest_frames(s: z3.Solver, sizes: list[Any], budget_s: float, m: z3.ModelRef) -> z3.ModelRef:
    if not sizes:
        return m
    t0 = time.perf_counter()
    total = z3.Sum([z3.If(x >= 0, x, 0) for x in sizes])
    while time.perf_counter() - t0 < budget_s:
        cur = m.eval(total, model_completion=True).as_long()
        if cur <= 0:
            break
        s.push()
        s.add(total < cur)
        if s.check() != z3.sat:
            s.pop()
            break
        m = s.model()
        s.pop()
    return m


def _cti(system: System, m: z3.ModelRef, pre: SymState, post: SymState, action: Action,
         params: dict[str, Any], inv_formula: Expr, extra: Iterable[Expr] = ()) -> dict[str, Any]:
    """A minimal state table: only the variables the invariant, the guard and the updates mention."""
    names = set(free_vars(inv_formula)) | set(free_vars(action.guard)) | set(action.modifies)
    for e in extra:
        names |= free_vars(e)
    names |= set(size_vars(system))
    names &= {v.name for v in system.state + system.constants}
    ordered = [v.name for v in system.constants + system.state if v.name in names]
    doms = _array_domains(system, m, [pre, post], [t for t in params.values() if t.sort() == z3.IntSort()])
    pvals = {}
    for p in action.params:
        t = params[p.name]
        pvals[p.name] = z3.is_true(m.eval(t, model_completion=True)) if p.sort == "bool" else \
            m.eval(t, model_completion=True).as_long()
    return {"params": pvals, "pre": state_values(system, m, pre, ordered, doms),
            "post": state_values(system, m, post, ordered, doms)}


def format_cti(cti: dict[str, Any], action: str, names: dict[int, str] | None = None) -> str:
    """The CTI as a two-column table (pre, post), arrays as lists, changed rows marked ``*``."""
    def show(name: str, v: Any) -> str:
        if isinstance(v, dict):
            vals = [v[k] for k in sorted(v)]
            if name.endswith("status") and names:
                return "[" + " ".join(names.get(x, str(x)) for x in vals) + "]"
            return "[" + " ".join(("T" if x else "F") if isinstance(x, bool) else str(x) for x in vals) + "]"
        return str(v).lower() if isinstance(v, bool) else str(v)

    params = ", ".join(f"{k}={v}" for k, v in cti["params"].items())
    rows = [(n, show(n, cti["pre"][n]), show(n, cti["post"][n])) for n in cti["pre"]]
    w0 = max([len("variable")] + [len(r[0]) for r in rows])
    w1 = max([len("pre")] + [len(r[1]) for r in rows])
    lines = [f"    counterexample to induction: {action}({params})",
             f"      {'variable':<{w0}}  {'pre':<{w1}}  post"]
    for n, a, b in rows:
        mark = "*" if a != b else " "
        lines.append(f"    {mark} {n:<{w0}}  {a:<{w1}}  {b}")
    return "\n".join(lines)


def _status_names() -> dict[int, str]:
    from .abi import Status

    return {int(s): s.name for s in Status}


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

    sizes = size_vars(system)
    for cls, (hyp_invs, actions) in _classes(system).items():
        goals = [i for i in hyp_invs if i.user == cls and (want is None or i.name in want)]
        for inv in goals:
            if acts is not None:
                for a in actions:
                    if a.name in acts:
                        emit(_consecution(system, a, inv, hyp_invs, timeout_ms, seed, sizes))
                continue
            enc = Encoder(system)
            st = enc.fresh_state("init")
            s = make_solver(timeout_ms=timeout_ms, seed=seed)
            s.add(enc.expr(system.assumptions, st), enc.expr(system.init, st))
            s.add(z3.Not(enc.expr(inv.formula, st)))
            s.add(*enc.count_facts())
            t0 = time.perf_counter()
            v, why = _check(s)
            emit(ObligationResult(system.name, "init", None, inv.name, v, (time.perf_counter() - t0) * 1e3, why))
            for a in actions:
                emit(_consecution(system, a, inv, hyp_invs, timeout_ms, seed, sizes))
    for sp in system.step_properties:
        if want is not None and sp.name not in want:
            continue
        hyp_invs, actions = _classes(system)[sp.user]
        for aname, prop in sp.per_action.items():
            if acts is not None and aname not in acts:
                continue
            a = system.action(aname)
            enc = Encoder(system)
            pre = enc.fresh_state("pre")
            params = make_params(a, "pre")
            s = make_solver(timeout_ms=timeout_ms, seed=seed)
            s.add(enc.expr(system.assumptions, pre))
            s.add(*(enc.expr(i.formula, pre) for i in hyp_invs))
            s.add(*param_constraints(enc, a, pre, params), enc.expr(a.guard, pre, params))
            s.add(z3.Not(enc.expr(prop, pre, params)))
            s.add(*enc.count_facts())
            t0 = time.perf_counter()
            v, why = _check(s)
            cti = None
            if v is Verdict.FAILED:
                m = _minimize(s, [pre[x] for x in sizes], small=_small_ints(system, [pre], params))
                cti = _cti(system, m, pre, pre, a, params, prop)
            emit(ObligationResult(system.name, "step", a.name, sp.name, v, (time.perf_counter() - t0) * 1e3,
                                  why, cti))
    return results


def _consecution(system: System, a: Action, inv: Invariant, hyp_invs: list[Invariant], timeout_ms: int,
                 seed: int, sizes: list[str]) -> ObligationResult:
    enc = Encoder(system)
    pre = enc.fresh_state("pre")
    params = make_params(a, "pre")
    post = successor(enc, a, pre, params, "post")
    s = make_solver(timeout_ms=timeout_ms, seed=seed)
    s.add(enc.expr(system.assumptions, pre))
    s.add(*(enc.expr(i.formula, pre) for i in hyp_invs))
    s.add(*param_constraints(enc, a, pre, params), enc.expr(a.guard, pre, params))
    bound = run_bounds(system)
    if bound is not None:
        s.add(enc.expr(bound, pre), enc.expr(bound, post))
    s.add(z3.Not(enc.expr(inv.formula, post)))
    s.add(*enc.count_facts(store_indices(enc, a, pre, params)))
    t0 = time.perf_counter()
    v, why = _check(s)
    cti = None
    if v is Verdict.FAILED:
        m = _minimize(s, [pre[x] for x in sizes], small=_small_ints(system, [pre, post], params))
        cti = _cti(system, m, pre, post, a, params, inv.formula)
    return ObligationResult(system.name, "consecution", a.name, inv.name, v, (time.perf_counter() - t0) * 1e3,
                            why, cti)


def default_systems() -> list[System]:
    """What ``nlmmap prove`` checks by default: the socket (Linux 4.5) and the queue service with
    the under-lock fix (mainline nfqueue is the known counterexample; see ``nlmmap bmc``)."""
    from .protocol import Variant, queue_system, socket_system

    return [socket_system(Variant()), queue_system(Variant(queue_alloc_outside_lock=False))]


def prove_default(**kw: Any) -> ProofReport:
    """Prove every default system (see :func:`default_systems`); keyword options as
    :func:`prove_system`."""
    rep = ProofReport(seed=kw.get("seed", DEFAULT_SEED), timeout_ms=kw.get("timeout_ms", DEFAULT_TIMEOUT_MS))
    t0 = time.perf_counter()
    for i, sysm in enumerate(default_systems()):
        rep.results += prove_system(sysm, lemmas=(i == 0), **kw)
    rep.total_ms = (time.perf_counter() - t0) * 1e3
    return rep


def run_prove_cli(systems: list[System], *, json_out: bool, out: TextIO, err: TextIO,
                  timeout_ms: int = DEFAULT_TIMEOUT_MS, seed: int = DEFAULT_SEED,
                  only: Iterable[str] | None = None) -> int:
    """Prove ``systems``, one flushed line per obligation on ``err`` (CTIs under failed lines),
    one JSON document on ``out`` if ``json_out``; returns the exit status."""
    rep = ProofReport(seed=seed, timeout_ms=timeout_ms)
    err.write(f"nlmmap prove: z3 {rep.z3_version}, seed {seed}, timeout {timeout_ms} ms per obligation\n")
    err.flush()
    names = _status_names()
    strengthening = {i.name for s in systems for i in s.invariants + proof_aids(s) if i.strengthening}

    def show(r: ObligationResult) -> None:
        line = r.line()
        if r.property in strengthening:
            line += "  (strengthening)"
        err.write(line + "\n")
        if r.cti is not None:
            err.write(format_cti(r.cti, r.action or "", names) + "\n")
        err.flush()

    for sysm in systems:
        b = run_bounds(sysm)
        if b is not None:
            err.write(f"[{sysm.name}] proofs cover runs with {render(b)} (a prefix-closed bound)\n")
    t0 = time.perf_counter()
    for i, sysm in enumerate(systems):
        rep.results += prove_system(sysm, timeout_ms=timeout_ms, seed=seed, on_result=show, only=only,
                                    lemmas=(i == 0))
    rep.total_ms = (time.perf_counter() - t0) * 1e3
    counts = rep.as_dict()["counts"]
    err.write(f"nlmmap prove: {len(rep.results)} obligations: {counts['ok']} ok, {counts['FAILED']} FAILED, "
              f"{counts['unknown']} unknown in {rep.total_ms / 1e3:.2f} s -> {rep.verdict.text}\n")
    err.flush()
    if json_out:
        d = rep.as_dict()
        d["strengthening"] = sorted(strengthening)
        out.write(json.dumps(d, sort_keys=True) + "\n")
    return rep.exit_code
