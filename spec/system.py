"""Transition systems as data: state variables, named actions (guard + updates), invariants.

This is the mypyvy/Ivy shape: an action is a declaration with a guard and a list of updates;
what it ``modifies`` is read off its updates, and "everything else is unchanged" is generated,
never written by hand. The same objects are executed concretely by the reference model
(:func:`apply_action`, :func:`violated_invariants`) and encoded symbolically for z3.

A concrete state is any object with ``state[name]`` (scalars, or indexable arrays),
``state.assign(name, value)`` and ``state.store(name, index, value)``; the reference model binds
these names to its frame bytes, so a spec update such as ``rx_status[j] := RESERVED`` writes the
status word of frame ``j`` in the model's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .expr import E, Expr, _lift, evaluate, free_vars, render

__all__ = [
    "StateVar", "Param", "Assign", "Store", "StoreRange", "Update", "Action", "Invariant", "System",
    "ConcreteState", "ActionDisabled", "GuardFailed", "apply_action", "enabled", "violated_invariants", "MapState",
    "StepProperty", "violated_step_properties", "DefaultArray",
]

SORTS = ("int", "bool", "int_array", "bool_array")


@dataclass(frozen=True)
class StateVar:
    """A state variable: its sort, whether it is ghost (bookkeeping for invariants only), and what
    the engines need to know of it without knowing the protocol.

    ``size``: an ``int`` that is the number of frames of a ring (what a minimal counterexample makes
    small, what bounded model checking bounds). ``index``: for an array, the ``size`` variable whose
    frames index it (tables show ``[0, size)``); None for arrays indexed by unbounded integers such
    as packet ids or CPUs (tables show the indices in play). ``values``: names of the values of an
    ``int`` or ``int_array`` (a mapping, or an ``IntEnum`` class such as the frame statuses), which
    counterexample and trace tables print by name."""

    name: str
    sort: str
    doc: str = ""
    ghost: bool = False
    size: bool = False
    index: str | None = None
    values: Mapping[int, str] | type | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"state variable {self.name}: sort must be one of {SORTS}, got {self.sort!r}")
        if self.size and self.sort != "int":
            raise ValueError(f"state variable {self.name}: a size (number of frames) must have sort int")
        if self.index is not None and not self.sort.endswith("array"):
            raise ValueError(f"state variable {self.name}: only arrays have an index size, not sort {self.sort}")
        if self.values is not None:
            if self.sort not in ("int", "int_array"):
                raise ValueError(f"state variable {self.name}: value names need sort int or int_array")
            vals = self.values
            names = {int(m): m.name for m in vals} if isinstance(vals, type) else {int(k): str(x) for k, x in
                                                                                    dict(vals).items()}
            object.__setattr__(self, "values", names)

    @property
    def value_names(self) -> dict[int, str]:
        """``{value: name}`` for the values that have one (empty when none do)."""
        return dict(self.values) if isinstance(self.values, Mapping) else {}


@dataclass(frozen=True)
class Param:
    """An action parameter: an integer in ``[lo, hi)``, or any value of ``sort`` if unbounded."""

    name: str
    lo: Expr | None = None
    hi: Expr | None = None
    sort: str = "int"
    doc: str = ""


@dataclass(frozen=True)
class Assign:
    """``var := value`` (value read in the pre-state)."""

    var: str
    value: Expr


@dataclass(frozen=True)
class Store:
    """``array[index] := value``."""

    array: str
    index: Expr
    value: Expr


@dataclass(frozen=True)
class StoreRange:
    """``array[k] := body(k)`` for every ``k`` in ``[lo, hi)`` (``var`` names ``k`` in ``body``)."""

    array: str
    var: str
    lo: Expr
    hi: Expr
    body: Expr


Update = Assign | Store | StoreRange


@dataclass(frozen=True)
class Action:
    """A named action: who takes it, its parameters, guard, updates, and the fact-sheet section.

    ``choose`` gives the kernel's deterministic choice of parameters in a concrete state (None: no
    choice applies). ``errno`` is the errno the user's call fails with when this action is taken
    (recvmsg's ENOBUFS); ``refusal`` the errno a user's call fails with when it is *not* enabled
    (munmap of an unmapped socket); both are for executable models and ignored by the engines."""

    name: str
    actor: str
    params: tuple[Param, ...]
    guard: Expr
    updates: tuple[Update, ...]
    section: str
    doc: str
    choose: Callable[[Any], dict[str, Any] | None] | None = field(default=None, compare=False)
    errno: str | None = None
    refusal: str | None = None

    def __post_init__(self) -> None:
        import errno as _errno

        for what in ("errno", "refusal"):
            v = getattr(self, what)
            if v is not None and not (isinstance(v, str) and v.startswith("E") and hasattr(_errno, v)):
                raise ValueError(f"action {self.name}: {what} must be a symbolic errno such as 'EINVAL', got {v!r}")

    @property
    def modifies(self) -> tuple[str, ...]:
        """The state variables this action may change (all others are unchanged)."""
        seen: list[str] = []
        for u in self.updates:
            name = u.var if isinstance(u, Assign) else u.array
            if name not in seen:
                seen.append(name)
        return tuple(seen)


@dataclass(frozen=True)
class Invariant:
    """A named property of every reachable state. ``user`` says which users it holds for:
    ``"any"`` (whatever the adversary writes) or ``"well-behaved"``."""

    name: str
    formula: Expr
    protects: str
    section: str
    user: str = "any"
    strengthening: bool = False


@dataclass(frozen=True)
class StepProperty:
    """A named property of every step: for each action in ``per_action``, the formula (over the
    pre-state and the action's parameters) must hold whenever the action is taken."""

    name: str
    per_action: Mapping[str, Expr]
    protects: str
    section: str
    user: str = "any"


@dataclass(frozen=True)
class System:
    """A transition system: constants (with assumptions), state, initial condition, actions,
    invariants. ``variant`` records the history switches it was built with.

    What only the proof engines use, declared with the system so that the engines know no system:
    ``proof_aids``, strengthening invariants the prover proves and assumes but the executable model
    cannot evaluate (they quantify over ranges too large to loop over); ``run_bound``, a
    prefix-closed bound on the runs a proof covers (asserted in the pre- and post-state of each
    consecution obligation), or None; ``scoped_counters``, the integer state variables that start
    at 0 and grow by at most one per step, which bounded model checking bounds by the depth + 1
    (None: derived, every non-size integer variable bounding a quantifier)."""

    name: str
    variant: Mapping[str, bool]
    constants: tuple[StateVar, ...]
    assumptions: Expr
    state: tuple[StateVar, ...]
    init: Expr
    actions: tuple[Action, ...]
    invariants: tuple[Invariant, ...]
    step_properties: tuple[StepProperty, ...] = ()
    doc: str = ""
    proof_aids: tuple[Invariant, ...] = ()
    run_bound: Expr | None = None
    scoped_counters: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        names = [v.name for v in self.constants + self.state]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"system {self.name}: duplicate variable names {sorted(dup)}")
        known = set(names)
        sizes = {v.name for v in self.constants + self.state if v.size}
        for v in self.constants + self.state:
            if v.index is not None and v.index not in sizes:
                raise ValueError(f"system {self.name}, variable {v.name}: index {v.index!r} is not a size variable "
                                 f"(declare it StateVar(..., size=True)); sizes: {sorted(sizes)}")
        for a in self.actions:
            local = {p.name for p in a.params}
            for what, e in _action_exprs(a):
                unknown = free_vars(e) - known - local
                if unknown:
                    raise ValueError(f"system {self.name}, action {a.name}: {what} uses unknown names "
                                     f"{sorted(unknown)}")
            for u in a.updates:
                target = u.var if isinstance(u, Assign) else u.array
                if target not in {v.name for v in self.state}:
                    raise ValueError(f"system {self.name}, action {a.name}: updates {target!r}, not a state variable")
        for inv in self.invariants + self.proof_aids:
            unknown = free_vars(inv.formula) - known
            if unknown:
                raise ValueError(f"system {self.name}, invariant {inv.name}: unknown names {sorted(unknown)}")
        if self.run_bound is not None and free_vars(self.run_bound) - known:
            raise ValueError(f"system {self.name}, run bound: unknown names "
                             f"{sorted(free_vars(self.run_bound) - known)}")
        ints = {v.name for v in self.state if v.sort == "int" and not v.size}
        if self.scoped_counters is not None and set(self.scoped_counters) - ints:
            raise ValueError(f"system {self.name}: scoped counters {sorted(set(self.scoped_counters) - ints)} are not "
                             "integer state variables (sizes excluded)")
        for sp in self.step_properties:
            for aname, f in sp.per_action.items():
                a = self.action(aname)
                unknown = free_vars(f) - known - {p.name for p in a.params}
                if unknown:
                    raise ValueError(f"system {self.name}, step property {sp.name} on {aname}: "
                                     f"unknown names {sorted(unknown)}")

    def action(self, name: str) -> Action:
        """The action called ``name`` (``KeyError`` naming the known ones otherwise)."""
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(f"system {self.name} has no action {name!r}; it has {[a.name for a in self.actions]}")

    def invariant(self, name: str) -> Invariant:
        """The invariant called ``name``."""
        for inv in self.invariants:
            if inv.name == name:
                return inv
        raise KeyError(f"system {self.name} has no invariant {name!r}")

    def var(self, name: str) -> StateVar:
        """The state variable or constant called ``name``."""
        for v in self.constants + self.state:
            if v.name == name:
                return v
        raise KeyError(f"system {self.name} has no variable {name!r}")


def _action_exprs(a: Action):
    yield "guard", a.guard
    for p in a.params:
        if p.lo is not None:
            yield f"param {p.name} lower bound", p.lo
        if p.hi is not None:
            yield f"param {p.name} upper bound", p.hi
    for u in a.updates:
        if isinstance(u, Assign):
            yield f"update of {u.var}", u.value
        elif isinstance(u, Store):
            yield f"update of {u.array}", u.index
            yield f"update of {u.array}", u.value
        else:
            yield f"update of {u.array}", u.lo
            yield f"update of {u.array}", u.hi
            yield f"update of {u.array}", _strip_bound(u.body, u.var)


def _strip_bound(e: Expr, name: str) -> Expr:
    """Treat ``name`` as bound inside ``e`` (for the free-variable check of StoreRange bodies)."""
    from .expr import forall

    return forall(0, 0, lambda _k: e, name=name) if name in free_vars(e) else e


class ConcreteState(Protocol):
    """What :func:`apply_action` needs of a concrete state."""

    def __getitem__(self, name: str) -> Any: ...

    def assign(self, name: str, value: Any) -> None: ...

    def store(self, name: str, index: int, value: Any) -> None: ...


class MapState(dict):
    """A concrete state kept in a dict (arrays as dicts with a default), for tests and BMC replay."""

    def __init__(self, values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None):
        super().__init__(values)
        self.defaults = dict(defaults or {})

    def assign(self, name: str, value: Any) -> None:
        self[name] = value

    def store(self, name: str, index: int, value: Any) -> None:
        arr = self[name]
        if isinstance(arr, DefaultArray):
            arr = arr.copy()
            arr[index] = value
            self[name] = arr
        else:
            arr = list(arr)
            arr[index] = value
            self[name] = arr


class DefaultArray(dict):
    """A total array: missing indices read as ``default``."""

    def __init__(self, default: Any, items: Mapping[int, Any] | None = None):
        super().__init__(items or {})
        self.default = default

    def __missing__(self, key: int) -> Any:
        return self.default

    def copy(self) -> DefaultArray:
        return DefaultArray(self.default, self)


class ActionDisabled(Exception):
    """An action was taken in a state where its guard is false: a bug of the model (or of whoever
    drives it), never an errno a user sees (a user call's refusal errno is ``Action.refusal``)."""

    def __init__(self, action: str, guard: str) -> None:
        super().__init__(f"spec action {action} taken while disabled: guard {guard} is false")
        self.action = action


#: The former name of :class:`ActionDisabled`.
GuardFailed = ActionDisabled


def _check_params(action: Action, state: ConcreteState, params: Mapping[str, Any]) -> dict[str, Any]:
    names = {p.name for p in action.params}
    extra = set(params) - names
    missing = names - set(params)
    if extra or missing:
        raise TypeError(f"action {action.name} takes parameters {sorted(names)}; "
                        f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    return dict(params)


def enabled(action: Action, state: ConcreteState, params: Mapping[str, Any]) -> bool:
    """Whether the guard holds (parameters in range included)."""
    p = _check_params(action, state, params)
    look = _lookup(state, p)
    for prm in action.params:
        if prm.lo is not None and not evaluate(prm.lo, look) <= p[prm.name]:
            return False
        if prm.hi is not None and not p[prm.name] < evaluate(prm.hi, look):
            return False
    return bool(evaluate(action.guard, look))


def _lookup(state: ConcreteState, params: Mapping[str, Any]) -> Callable[[str], Any]:
    def look(name: str) -> Any:
        if name in params:
            return params[name]
        return state[name]

    return look


def apply_action(action: Action, state: ConcreteState, params: Mapping[str, Any] | None = None) -> None:
    """Execute ``action`` on ``state``: check the guard, evaluate every update in the pre-state,
    then write them all (simultaneous assignment). Raises :class:`ActionDisabled` if not enabled."""
    p = _check_params(action, state, params or {})
    if not enabled(action, state, p):
        raise GuardFailed(action.name, render(action.guard))
    look = _lookup(state, p)
    writes: list[tuple[str, str, Any, Any]] = []
    for u in action.updates:
        if isinstance(u, Assign):
            writes.append(("assign", u.var, None, evaluate(u.value, look)))
        elif isinstance(u, Store):
            writes.append(("store", u.array, evaluate(u.index, look), evaluate(u.value, look)))
        else:
            lo, hi = evaluate(u.lo, look), evaluate(u.hi, look)
            for k in range(lo, hi):
                writes.append(("store", u.array, k, evaluate(u.body, look, {u.var: k})))
    for kind, name, index, value in writes:
        if kind == "assign":
            state.assign(name, value)
        else:
            state.store(name, index, value)


def violated_step_properties(system: System, action: Action, state: ConcreteState,
                             params: Mapping[str, Any] | None = None, *, user: str = "any") -> list[str]:
    """Names of the step properties that taking ``action`` with ``params`` from ``state`` breaks
    (evaluated in the pre-state, before the action is applied)."""
    look = _lookup(state, dict(params or {}))
    out = []
    for sp in system.step_properties:
        if (user == "any" and sp.user != "any") or action.name not in sp.per_action:
            continue
        if not evaluate(sp.per_action[action.name], look):
            out.append(sp.name)
    return out


def violated_invariants(system: System, state: ConcreteState, *, user: str = "any") -> list[str]:
    """Names of the invariants false in ``state``. With ``user="any"`` only the invariants that
    hold whatever the user writes are checked; ``"well-behaved"`` checks all of them."""
    out = []
    for inv in system.invariants:
        if user == "any" and inv.user != "any":
            continue
        if not evaluate(inv.formula, state.__getitem__):
            out.append(inv.name)
    return out


def guard_text(e: E) -> str:
    """Readable guard (used in error messages and docs)."""
    return render(_lift(e))
