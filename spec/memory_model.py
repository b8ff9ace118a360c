"""Axiomatic memory models in z3: candidate executions of small litmus programs, checked against the
consistency axioms of SC, x86-TSO and ARMv8 (the "herding cats" style of herd7's ``.cat`` files).

A *litmus program* (:class:`Program`) is a few threads of events (reads, writes, fences, each with
its instruction's annotations), initial values, control dependencies and a *final condition* (the
outcome asked about, as a disjunction of conjunctions of register or final-memory values). A
*candidate execution* picks, in z3, a reads-from edge for every read (``rf``, one write of the same
location, initial writes included) and a coherence order per location (``co``, initial write
first); from-read is derived, ``fr = rf^-1 ; co``. A memory model (:class:`MemoryModel`) is a list of
axioms, each ``acyclic`` over a union of named terms built from ``po``, ``rf``, ``co``, ``fr`` and the
events' annotations. The final condition is reachable iff some candidate execution satisfies the
axioms: SAT = allowed (z3 gives the execution), UNSAT = forbidden for every execution.

Sources of the axioms (each term below names its line):

* **SC**: Lamport 1979; as ``acyclic(po | rf | co | fr)`` in Shasha and Snir, "Efficient and correct
  execution of parallel programs that share memory", TOPLAS 1988, and Alglave, Maranget, Tautschnig,
  "Herding cats", TOPLAS 36(2) 2014, section 4.
* **x86-TSO**: Owens, Sarkar, Sewell, "A better x86 memory model: x86-TSO", TPHOLs 2009; axioms as
  herd7's ``x86tso.cat`` (Herding cats, section 4.3): ``uniproc`` = ``acyclic(po-loc | rf | fr | co)``
  and ``tso`` = ``acyclic(mfence | implied | WW(po) | RM(po) | rfe | fr | co)``, where ``implied`` is
  the W->R program order made ordered by a locked instruction (``XCHG``) at either end. ``RM(po)`` is
  split here into ``RR(po)`` and ``RW(po)`` so that each can be dropped on its own.
* **ARMv8** (AArch64, other-multicopy-atomic): Pulte, Flur, Deacon, French, Sarkar, Sewell,
  "Simplifying ARM concurrency: multicopy-atomic axiomatic and operational models for ARMv8",
  POPL 2018; as herd7's ``aarch64.cat`` (Deacon, ARM Ltd 2016; ARM ARM B2.3): ``internal`` =
  ``acyclic(po-loc | fr | co | rf)``; ``external`` = ``irreflexive(ob)`` with ``ob = (obs | dob | aob |
  bob)+``, i.e. ``acyclic(obs | dob | aob | bob)``; ``obs = rfe | fre | coe`` (no ``rfi``: a write may
  be seen early by its own thread, by nobody else: other-multicopy atomicity); ``dob`` keeps only
  ``ctrl; [W]`` (the programs here have no address or data dependencies and no ISB, and ``(ctrl |
  data); coi`` is contained in ``ctrl; [W]`` because ``ctrl`` reaches every po-later event and ``coi``
  is in ``po`` by ``internal``); ``aob`` is empty (no exclusives); ``bob`` is all seven lines:
  ``po; [dmb.full]; po``, ``[L]; po; [A]``, ``[R]; po; [dmb.ld]; po``, ``[A | Q]; po``, ``[W]; po;
  [dmb.st]; po; [W]``, ``po; [L]``, ``po; [L]; coi``.

Annotations: reads ``A`` (LDAR, acquire, RCsc), ``Q`` (LDAPR, acquire, RCpc, ARMv8.3); writes ``L``
(STLR, release), ``X`` (x86 ``XCHG``: a locked write); fences ``mfence`` (x86 ``MFENCE`` or any locked
instruction used as a fence), ``dmb.full`` (``DMB ISH``), ``dmb.ld`` (``DMB ISHLD``), ``dmb.st``
(``DMB ISHST``). Everything here is generic: no netlink names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import z3

from .z3enc import make_solver

__all__ = ["Event", "Program", "Term", "Axiom", "MemoryModel", "SC", "X86_TSO", "ARMV8", "MODELS",
           "Execution", "CheckResult", "check", "R", "W", "F", "INIT_THREAD"]

INIT_THREAD = -1


# --- events and programs ------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """One memory event: a read, a write or a fence of thread ``thread`` (``INIT_THREAD`` for the
    initial writes), with its instruction (``instr``) and the source operation it came from."""

    eid: str
    thread: int
    kind: str  # "R", "W", "F"
    loc: str | None = None
    value: int | None = None  # the value written (W)
    reg: str | None = None  # the register read into (R)
    ann: frozenset[str] = frozenset()
    instr: str = ""
    src: str = ""

    @property
    def is_init(self) -> bool:
        return self.thread == INIT_THREAD


def R(loc: str, reg: str, *ann: str, instr: str = "", src: str = "") -> Event:
    """A read of ``loc`` into ``reg`` (thread and id are given by :class:`Program`)."""
    return Event("", 0, "R", loc, None, reg, frozenset(ann), instr, src)


def W(loc: str, value: int, *ann: str, instr: str = "", src: str = "") -> Event:
    """A write of ``value`` to ``loc``."""
    return Event("", 0, "W", loc, value, None, frozenset(ann), instr, src)


def F(kind: str, instr: str = "", src: str = "") -> Event:
    """A fence of ``kind`` (``mfence``, ``dmb.full``, ``dmb.ld``, ``dmb.st``)."""
    return Event("", 0, "F", None, None, None, frozenset((kind,)), instr, src)


Atom = tuple[str, int]  # ("r0", 1): register r0 holds 1; ("[x]", 1): x is finally 1


@dataclass(frozen=True)
class Program:
    """A litmus program: threads of events, initial values (0 where not given), control
    dependencies ``ctrl`` as (read register, index in its thread from which on the events depend),
    and the final condition ``exists``: a disjunction of conjunctions of atoms."""

    name: str
    threads: tuple[tuple[Event, ...], ...]
    exists: tuple[tuple[Atom, ...], ...]
    init: tuple[tuple[str, int], ...] = ()
    ctrl: tuple[tuple[str, int], ...] = ()
    thread_names: tuple[str, ...] = ()
    values: Mapping[str, Mapping[int, str]] = field(default_factory=dict)  # value names for display
    doc: str = ""

    def __post_init__(self) -> None:
        regs = [e.reg for t in self.threads for e in t if e.kind == "R"]
        if len(regs) != len(set(regs)):
            raise ValueError(f"litmus program {self.name!r}: registers must be unique across threads: {regs}")
        known = set(regs)
        for conj in self.exists:
            for name, _ in conj:
                if not (name in known or (name.startswith("[") and name.endswith("]"))):
                    raise ValueError(f"litmus program {self.name!r}: final condition names {name!r}, which no read "
                                     f"defines (registers: {sorted(known)}; '[x]' for a final value)")
        for reg, _ in self.ctrl:
            if reg not in known:
                raise ValueError(f"litmus program {self.name!r}: control dependency on unknown register {reg!r}")

    def locations(self) -> list[str]:
        locs = {e.loc for t in self.threads for e in t if e.loc is not None}
        locs |= {loc for loc, _ in self.init}
        locs |= {n[1:-1] for conj in self.exists for n, _ in conj if n.startswith("[")}
        return sorted(locs)

    def events(self) -> list[Event]:
        """Initial writes (one per location, ids ``i:<loc>``), then the threads' events with ids
        ``a``, ``b``, ... in thread order (herd's naming)."""
        init = dict(self.init)
        out = [Event(f"i:{loc}", INIT_THREAD, "W", loc, init.get(loc, 0), instr="init") for loc in self.locations()]
        k = 0
        for t, evs in enumerate(self.threads):
            for e in evs:
                name = chr(ord("a") + k) if k < 26 else f"e{k}"
                out.append(replace(e, eid=name, thread=t))
                k += 1
        return out

    def thread_name(self, t: int) -> str:
        return self.thread_names[t] if t < len(self.thread_names) else f"T{t}"

    def value_name(self, loc: str | None, v: int | None) -> str:
        if v is None:
            return "?"
        return self.values.get(loc or "", {}).get(v, str(v))

    def condition_text(self) -> str:
        """The final condition in herd's notation: ``exists (r0=1 /\\ r1=0) \\/ (...)``."""
        def atom(a: Atom) -> str:
            loc = a[0][1:-1] if a[0].startswith("[") else self._reg_loc(a[0])
            return f"{a[0]}={self.value_name(loc, a[1])}"
        parts = [" /\\ ".join(atom(a) for a in conj) for conj in self.exists]
        return "exists " + " \\/ ".join(f"({p})" for p in parts)

    def _reg_loc(self, reg: str) -> str | None:
        for t in self.threads:
            for e in t:
                if e.reg == reg:
                    return e.loc
        return None


# --- relations over the events of one program -----------------------------------------------------
class Rel:
    """A binary relation on event indices: ``pairs[(i, j)]`` is a z3 Bool (or ``True``)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: Mapping[tuple[int, int], Any] | None = None):
        self.pairs: dict[tuple[int, int], Any] = dict(pairs or {})

    def __or__(self, o: Rel) -> Rel:
        out = dict(self.pairs)
        for k, v in o.pairs.items():
            out[k] = _or(out[k], v) if k in out else v
        return Rel(out)

    def seq(self, o: Rel) -> Rel:
        """Relational composition ``self ; o``."""
        by_src: dict[int, list[tuple[int, Any]]] = {}
        for (j, k), v in o.pairs.items():
            by_src.setdefault(j, []).append((k, v))
        out: dict[tuple[int, int], Any] = {}
        for (i, j), v in self.pairs.items():
            for k, w in by_src.get(j, ()):
                c = _and(v, w)
                out[(i, k)] = _or(out[(i, k)], c) if (i, k) in out else c
        return Rel(out)

    def dom(self, keep: Callable[[int], bool]) -> Rel:
        """``[keep]; self``."""
        return Rel({k: v for k, v in self.pairs.items() if keep(k[0])})

    def rng(self, keep: Callable[[int], bool]) -> Rel:
        """``self; [keep]``."""
        return Rel({k: v for k, v in self.pairs.items() if keep(k[1])})

    def where(self, keep: Callable[[int, int], bool]) -> Rel:
        return Rel({k: v for k, v in self.pairs.items() if keep(*k)})


def _or(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    return z3.Or(a, b)


def _and(a: Any, b: Any) -> Any:
    if a is True:
        return b
    if b is True:
        return a
    return z3.And(a, b)


class Exec:
    """The candidate executions of one program, as z3 variables: ``rf`` choices, ``co`` ranks, and
    the static and derived relations the axioms are written in."""

    def __init__(self, prog: Program, tag: str = "x"):
        self.prog = prog
        self.ev = ev = prog.events()
        self.idx = {e.eid: i for i, e in enumerate(ev)}
        n = len(ev)
        self.n = n
        self.reads = [i for i in range(n) if ev[i].kind == "R"]
        self.writes = [i for i in range(n) if ev[i].kind == "W"]
        self.constraints: list[Any] = []
        # program order: same thread, earlier in the thread (init events are in no thread)
        pos: dict[int, int] = {}
        for t in range(len(prog.threads)):
            k = 0
            for i in range(n):
                if ev[i].thread == t:
                    pos[i] = k
                    k += 1
        self.pos = pos
        self.po = Rel({(i, j): True for i in range(n) for j in range(n)
                       if not ev[i].is_init and ev[i].thread == ev[j].thread and pos[i] < pos[j]})
        self.po_loc = self.po.where(lambda i, j: ev[i].loc is not None and ev[i].loc == ev[j].loc)
        regs = {ev[i].reg: i for i in self.reads}
        ctrl: dict[tuple[int, int], Any] = {}
        for reg, start in prog.ctrl:
            r = regs[reg]
            for j in range(n):
                if ev[j].thread == ev[r].thread and not ev[j].is_init and pos[j] >= start and pos[j] > pos[r]:
                    ctrl[(r, j)] = True
        self.ctrl = Rel(ctrl)
        # reads-from: one write of the same location per read
        self.rf_var: dict[tuple[int, int], Any] = {}
        for r in self.reads:
            choices = []
            for w in self.writes:
                if ev[w].loc == ev[r].loc:
                    b = z3.Bool(f"{tag}_rf_{ev[w].eid}_{ev[r].eid}")
                    self.rf_var[(w, r)] = b
                    choices.append(b)
            self.constraints.append(z3.PbEq([(b, 1) for b in choices], 1))
        self.rf = Rel(self.rf_var)
        # coherence: a rank per write, initial write 0, others distinct and positive
        self.co_rank = {w: (z3.IntVal(0) if ev[w].is_init else z3.Int(f"{tag}_co_{ev[w].eid}")) for w in self.writes}
        for loc in prog.locations():
            ws = [w for w in self.writes if ev[w].loc == loc and not ev[w].is_init]
            self.constraints += [self.co_rank[w] > 0 for w in ws]
            if len(ws) > 1:
                self.constraints.append(z3.Distinct(*[self.co_rank[w] for w in ws]))
        self.co = Rel({(a, b): self.co_rank[a] < self.co_rank[b] for a in self.writes for b in self.writes
                       if a != b and ev[a].loc == ev[b].loc and not ev[b].is_init})
        self.fr = self.rf_inv().seq(self.co)

    # derived relations
    def rf_inv(self) -> Rel:
        return Rel({(r, w): v for (w, r), v in self.rf_var.items()})

    def ext(self, rel: Rel) -> Rel:
        """Pairs of different threads (initial writes count as another thread)."""
        return rel.where(lambda i, j: self.ev[i].thread != self.ev[j].thread)

    def int_(self, rel: Rel) -> Rel:
        return rel.where(lambda i, j: self.ev[i].thread == self.ev[j].thread)

    def kind(self, *kinds: str) -> Callable[[int], bool]:
        return lambda i: self.ev[i].kind in kinds

    def ann(self, *anns: str) -> Callable[[int], bool]:
        return lambda i: bool(self.ev[i].ann & set(anns))

    def fenced(self, kind: str) -> Rel:
        """``po; [F kind]; po``."""
        fence = Rel({(i, i): True for i in range(self.n) if self.ev[i].kind == "F" and kind in self.ev[i].ann})
        return self.po.seq(fence).seq(self.po)

    # values
    def reads_value(self, reg: str, value: int) -> Any:
        r = next(i for i in self.reads if self.ev[i].reg == reg)
        opts = [b for (w, rr), b in self.rf_var.items() if rr == r and self.ev[w].value == value]
        return z3.Or(*opts) if opts else z3.BoolVal(False)

    def final_value(self, loc: str, value: int) -> Any:
        ws = [w for w in self.writes if self.ev[w].loc == loc]
        opts = []
        for w in ws:
            if self.ev[w].value == value:
                opts.append(z3.And(*[self.co_rank[o] < self.co_rank[w] for o in ws if o != w]))
        return z3.Or(*opts) if opts else z3.BoolVal(False)

    def atom(self, a: Atom) -> Any:
        name, value = a
        if name.startswith("["):
            return self.final_value(name[1:-1], value)
        return self.reads_value(name, value)

    def condition(self, conjs: Iterable[tuple[Atom, ...]]) -> Any:
        return z3.Or(*[z3.And(*[self.atom(a) for a in conj]) for conj in conjs])


# --- axioms --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One named term of an axiom's union (its name is the ``.cat`` text it stands for)."""

    name: str
    build: Callable[[Exec], Rel]


@dataclass(frozen=True)
class Axiom:
    """``acyclic(t1 | t2 | ...)`` named ``name`` (``irreflexive(r+)`` is written as ``acyclic(r)``)."""

    name: str
    terms: tuple[Term, ...]
    source: str = ""

    def relation(self, x: Exec) -> Rel:
        out = Rel()
        for t in self.terms:
            out = out | t.build(x)
        return out


@dataclass(frozen=True)
class MemoryModel:
    """A named list of axioms; :meth:`without` makes the model with one term deleted (the tests
    check that every term is needed by some calibration litmus test)."""

    name: str
    axioms: tuple[Axiom, ...]
    source: str = ""

    def without(self, axiom: str, term: str) -> MemoryModel:
        if not any(a.name == axiom and any(t.name == term for t in a.terms) for a in self.axioms):
            raise KeyError(f"{self.name} has no term {term!r} in axiom {axiom!r}")
        axs = tuple(replace(a, terms=tuple(t for t in a.terms if not (a.name == axiom and t.name == term)))
                    for a in self.axioms)
        return replace(self, name=f"{self.name} without {axiom}:{term}", axioms=axs)

    def with_term(self, axiom: str, term: Term) -> MemoryModel:
        """The model with ``term`` added to ``axiom`` (the tests' deliberately too strong models)."""
        if not any(a.name == axiom for a in self.axioms):
            raise KeyError(f"{self.name} has no axiom {axiom!r}")
        axs = tuple(replace(a, terms=a.terms + (term,)) if a.name == axiom else a for a in self.axioms)
        return replace(self, name=f"{self.name} with {axiom}:{term.name}", axioms=axs)

    def term_names(self) -> list[tuple[str, str]]:
        return [(a.name, t.name) for a in self.axioms for t in a.terms]


def _t(name: str, build: Callable[[Exec], Rel]) -> Term:
    return Term(name, build)


T_PO = _t("po", lambda x: x.po)
T_PO_LOC = _t("po-loc", lambda x: x.po_loc)
T_RF = _t("rf", lambda x: x.rf)
T_CO = _t("co", lambda x: x.co)
T_FR = _t("fr", lambda x: x.fr)
T_RFE = _t("rfe", lambda x: x.ext(x.rf))
T_FRE = _t("fre", lambda x: x.ext(x.fr))
T_COE = _t("coe", lambda x: x.ext(x.co))

SC = MemoryModel("SC", (Axiom("sc", (T_PO, T_RF, T_CO, T_FR), "Shasha and Snir 1988; Herding cats s.4"),),
                 "sequential consistency (Lamport 1979)")

X86_TSO = MemoryModel("x86-TSO", (
    Axiom("uniproc", (T_PO_LOC, T_RF, T_FR, T_CO), "x86tso.cat: acyclic po-loc | com"),
    Axiom("tso", (
        _t("mfence", lambda x: x.fenced("mfence")),
        _t("implied", lambda x: x.po.dom(x.kind("W")).rng(x.kind("R")).where(
            lambda i, j: bool((x.ev[i].ann | x.ev[j].ann) & {"X"}))),
        _t("WW(po)", lambda x: x.po.dom(x.kind("W")).rng(x.kind("W"))),
        _t("RR(po)", lambda x: x.po.dom(x.kind("R")).rng(x.kind("R"))),
        _t("RW(po)", lambda x: x.po.dom(x.kind("R")).rng(x.kind("W"))),
        T_RFE, T_FR, T_CO,
    ), "x86tso.cat: acyclic mfence | implied | po_ghb | rfe | fr | co as tso"),
), "Owens, Sarkar, Sewell, TPHOLs 2009; herd7 x86tso.cat")


def _coi(x: Exec) -> Rel:
    return x.int_(x.co)


ARMV8 = MemoryModel("ARMv8", (
    Axiom("internal", (T_PO_LOC, T_FR, T_CO, T_RF), "aarch64.cat: acyclic po-loc | ca | rf as internal"),
    Axiom("external", (
        T_RFE, T_FRE, T_COE,                                                    # obs
        _t("ctrl;[W]", lambda x: x.ctrl.rng(x.kind("W"))),                      # dob
        _t("po;[dmb.full];po", lambda x: x.fenced("dmb.full")),                 # bob ...
        _t("[L];po;[A]", lambda x: x.po.dom(x.ann("L")).rng(x.ann("A"))),
        _t("[R];po;[dmb.ld];po", lambda x: x.fenced("dmb.ld").dom(x.kind("R"))),
        _t("[A|Q];po", lambda x: x.po.dom(x.ann("A", "Q"))),
        _t("[W];po;[dmb.st];po;[W]", lambda x: x.fenced("dmb.st").dom(x.kind("W")).rng(x.kind("W"))),
        _t("po;[L]", lambda x: x.po.rng(x.ann("L"))),
        _t("po;[L];coi", lambda x: x.po.rng(x.ann("L")).seq(_coi(x))),
    ), "aarch64.cat: irreflexive ob as external, ob = (obs | dob | aob | bob)+"),
), "Pulte et al., POPL 2018; herd7 aarch64.cat (Deacon, ARM Ltd 2016)")

MODELS: dict[str, MemoryModel] = {m.name: m for m in (SC, X86_TSO, ARMV8)}


def _acyclic(rel: Rel, x: Exec, tag: str) -> list[Any]:
    """``acyclic(rel)`` as a rank per event: every pair in ``rel`` goes up."""
    rank = [z3.Int(f"{tag}_{i}") for i in range(x.n)]
    out = []
    for (i, j), v in rel.pairs.items():
        c = z3.BoolVal(False) if i == j else rank[i] < rank[j]
        out.append(c if v is True else z3.Implies(v, c))
    return out


# --- checking and reading an execution back --------------------------------------------------------
@dataclass(frozen=True)
class Execution:
    """One consistent execution reaching the final condition: values read, ``rf``/``co``/``fr``
    edges (event ids), the shortest cycle of ``po | rf | co | fr`` that makes it non-SC, and which of
    its ``po`` edges the model does not order (where a barrier is missing)."""

    program: str
    model: str
    events: tuple[dict[str, Any], ...]
    rf: tuple[tuple[str, str], ...]
    co: tuple[tuple[str, str], ...]
    fr: tuple[tuple[str, str], ...]
    cycle: tuple[tuple[str, str, str], ...]  # (from, relation, to)
    unordered: tuple[tuple[str, str], ...]
    values: dict[str, int]
    thread_names: tuple[str, ...]
    value_names: dict[str, dict[int, str]] = field(default_factory=dict)
    condition: str = ""
    ctrl: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "model": self.model, "events": list(self.events),
                "rf": [list(p) for p in self.rf], "co": [list(p) for p in self.co], "fr": [list(p) for p in self.fr],
                "cycle": [list(c) for c in self.cycle], "unordered": [list(p) for p in self.unordered],
                "values": dict(self.values), "threads": list(self.thread_names), "condition": self.condition,
                "ctrl": [list(p) for p in self.ctrl]}


@dataclass(frozen=True)
class CheckResult:
    """Is the final condition reachable: ``allowed`` True (SAT, with ``execution``), False
    (UNSAT: forbidden) or None (``unknown``, with ``reason``)."""

    allowed: bool | None
    ms: float
    reason: str = ""
    execution: Execution | None = None

    @property
    def text(self) -> str:
        return {True: "allowed", False: "forbidden", None: "unknown"}[self.allowed]


def check(prog: Program, model: MemoryModel, *, timeout_ms: int = 5000, seed: int = 0,
          explain: bool = True) -> CheckResult:
    """Is ``prog``'s final condition reachable by an execution consistent with ``model``?

    One fresh solver (:func:`nlmmap.spec.z3enc.make_solver`, fixed seed, its own timeout); ``ms``
    covers the whole check, the explanation included. With
    ``explain``, a reachable condition comes with a minimal execution (:class:`Execution`): the
    first satisfiable disjunct of the condition (fewest atoms first) and, for every read the
    condition does not mention, a write of some thread rather than the initial value where the
    model allows it."""
    t0 = time.perf_counter()
    x = Exec(prog)
    s = make_solver(timeout_ms=timeout_ms, seed=seed)
    s.add(*x.constraints)
    for k, ax in enumerate(model.axioms):
        s.add(*_acyclic(ax.relation(x), x, f"ord{k}_{ax.name}"))
    s.add(x.condition(prog.exists))
    res = s.check()
    if res == z3.unsat:
        return CheckResult(False, (time.perf_counter() - t0) * 1e3)
    if res == z3.unknown:
        return CheckResult(None, (time.perf_counter() - t0) * 1e3, s.reason_unknown())
    if not explain:
        return CheckResult(True, (time.perf_counter() - t0) * 1e3)
    ex = _execution(x, _minimal_model(s, x, prog), model)
    return CheckResult(True, (time.perf_counter() - t0) * 1e3, "", ex)


def _minimal_model(s: z3.Solver, x: Exec, prog: Program) -> z3.ModelRef:
    mentioned: set[str] = set()
    for conj in sorted(prog.exists, key=len):
        s.push()
        s.add(z3.And(*[x.atom(a) for a in conj]))
        if s.check() == z3.sat:
            mentioned = {n for n, _ in conj}
            break
        s.pop()
    for r in x.reads:
        if x.ev[r].reg in mentioned:
            continue
        fresh = [b for (w, rr), b in x.rf_var.items() if rr == r and not x.ev[w].is_init]
        if not fresh:
            continue
        s.push()
        s.add(z3.Or(*fresh))
        if s.check() != z3.sat:
            s.pop()
    if s.check() != z3.sat:  # cannot happen: every push kept is satisfiable
        raise AssertionError("lost the execution while minimizing")
    return s.model()


def _truth(m: z3.ModelRef, v: Any) -> bool:
    return True if v is True else z3.is_true(m.eval(v, model_completion=True))


def _execution(x: Exec, m: z3.ModelRef, model: MemoryModel) -> Execution:
    ev = x.ev
    rf = [(w, r) for (w, r), b in x.rf_var.items() if _truth(m, b)]
    val = {ev[r].reg: ev[w].value for w, r in rf}
    co_all = [(a, b) for (a, b), v in x.co.pairs.items() if _truth(m, v)]
    fr_all = [(r, w) for (r, w), v in x.fr.pairs.items() if _truth(m, v)]
    edges: list[tuple[int, str, int]] = []
    edges += [(i, "po", j) for i, j in x.po.pairs if ev[i].kind != "F" and ev[j].kind != "F"]
    edges += [(w, "rf", r) for w, r in rf] + [(a, "co", b) for a, b in co_all] + [(r, "fr", w) for r, w in fr_all]
    cycle = _shortest_cycle(edges, x.n)
    used = {(i, rel, j) for i, rel, j in cycle}
    # shown: the order per location without its transitive pairs and without the initial writes
    # (always first), fr to the next write only, and whatever the cycle uses
    co = [(a, b) for a, b in co_all
          if (a, "co", b) in used or (not ev[a].is_init
                                      and not any((a, c) in co_all and (c, b) in co_all for c in x.writes))]
    fr = [(r, w) for r, w in fr_all
          if (r, "fr", w) in used or not any((r, c) in fr_all and (c, w) in co_all for c in x.writes)]
    ordered: set[tuple[int, int]] = set()
    for ax in model.axioms:
        ordered |= _closure({k for k, v in ax.relation(x).pairs.items() if _truth(m, v)}, x.n)
    unordered = [(ev[i].eid, ev[j].eid) for i, rel, j in cycle if rel == "po" and (i, j) not in ordered]

    def ext(rel: str, i: int, j: int) -> str:
        if rel == "po":
            return "po"
        return rel + ("i" if ev[i].thread == ev[j].thread else "e")

    events = []
    for e in ev:
        d: dict[str, Any] = {"id": e.eid, "thread": e.thread, "kind": e.kind, "loc": e.loc, "instr": e.instr,
                             "src": e.src, "ann": sorted(e.ann)}
        if e.kind == "W":
            d["value"] = e.value
        elif e.kind == "R":
            d["reg"] = e.reg
            d["value"] = val[e.reg]
        events.append(d)
    return Execution(
        program=x.prog.name, model=model.name, events=tuple(events),
        rf=tuple((ev[w].eid, ev[r].eid) for w, r in rf),
        co=tuple((ev[a].eid, ev[b].eid) for a, b in co),
        fr=tuple((ev[r].eid, ev[w].eid) for r, w in fr),
        cycle=tuple((ev[i].eid, ext(rel, i, j), ev[j].eid) for i, rel, j in cycle),
        unordered=tuple(unordered), values=val,
        thread_names=tuple(x.prog.thread_name(t) for t in range(len(x.prog.threads))),
        value_names={k: dict(v) for k, v in x.prog.values.items()}, condition=x.prog.condition_text(),
        ctrl=tuple((ev[i].eid, ev[j].eid) for i, j in x.ctrl.pairs))


def _shortest_cycle(edges: list[tuple[int, str, int]], n: int) -> list[tuple[int, str, int]]:
    """The shortest directed cycle (fewest edges; ties: first found from the lowest event)."""
    adj: dict[int, list[tuple[str, int]]] = {}
    for i, rel, j in edges:
        adj.setdefault(i, []).append((rel, j))
    best: list[tuple[int, str, int]] = []
    for start in range(n):
        prev: dict[int, tuple[int, str]] = {}
        frontier = [start]
        seen = {start}
        found = None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for rel, v in adj.get(u, ()):
                    if v == start:
                        found = (u, rel)
                        break
                    if v not in seen:
                        seen.add(v)
                        prev[v] = (u, rel)
                        nxt.append(v)
                if found:
                    break
            frontier = nxt
        if found is None:
            continue
        path = [(found[0], found[1], start)]
        u = found[0]
        while u != start:
            p, rel = prev[u]
            path.append((p, rel, u))
            u = p
        path.reverse()
        if not best or len(path) < len(best):
            best = path
    return best


def _closure(pairs: set[tuple[int, int]], n: int) -> set[tuple[int, int]]:
    reach = set(pairs)
    for k in range(n):
        for i in range(n):
            if (i, k) in reach:
                for j in range(n):
                    if (k, j) in reach:
                        reach.add((i, j))
    return reach
