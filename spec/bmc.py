"""``nlmmap bmc``: shortest counterexample traces by bounded model checking, and their replay.

The system is unrolled from its initial state one step at a time (iterative deepening, one
incremental solver per user class with push/pop per depth), so the first violation found is a
shortest one. Each step picks one action (a selector per step) with fresh parameters; the
post-state is generated from the action's updates (:mod:`nlmmap.spec.z3enc`). Ring sizes are
bounded by ``max_n`` (small scope; ``Count`` nodes are unrolled up to it), and when a violation
exists the trace is made readable: fewest frames first, then small parameter values and an
initial state whose arrays are constant.

Two classes of users are searched, as in :mod:`nlmmap.spec.prove`: ``any`` (adversary actions
present, ``user="any"`` properties) and ``well-behaved`` (no adversary, every property). The
trace is printed as a table and saved in Apalache's ITF JSON (:mod:`nlmmap.spec.itf`);
:func:`replay` re-runs a saved trace with :func:`nlmmap.spec.system.apply_action` on a concrete
state built by a pluggable factory and reports the violated property again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import z3

from .expr import Expr
from .itf import ACTION_KEY, PICKS_KEY, decode_value, make_trace
from .system import Action, DefaultArray, MapState, System, apply_action, violated_invariants, violated_step_properties
from .z3enc import (
    Encoder,
    SymState,
    make_params,
    make_solver,
    param_constraints,
    range_conditions,
    size_vars,
    successor,
    z3_sort,
)

__all__ = ["BmcResult", "bmc", "format_trace", "trace_to_itf", "replay", "ReplayResult", "system_from_meta",
           "variant_names"]

DEFAULT_SEED = 0
#: BMC scope: parameters with a lower bound and no upper bound (CPU numbers, sizes, capacities)
#: are below this, and so is every array index read; huge constant ranges are cut to it. Small
#: values keep traces readable and the search fast (the queue flaw: 3.4 s at 8, 8-12 s at 64);
#: ``nlmmap prove`` has no such bound.
INDEX_SCOPE = 16


@dataclass
class BmcResult:
    """Outcome of a search: a trace (states, actions, parameters) and the property it breaks, or
    none found up to ``depth``; ``verdict`` is ``violation``, ``none`` or ``unknown``."""

    system: str
    variant: list[str]
    verdict: str
    depth: int
    max_n: int
    violated: str | None = None
    kind: str | None = None
    user: str | None = None
    states: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    picks: list[dict[str, Any]] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    ms: float = 0.0
    per_depth_ms: list[float] = field(default_factory=list)
    seed: int = DEFAULT_SEED
    z3_version: str = field(default_factory=z3.get_full_version)
    reason: str = ""
    sliced: str = ""  # how the cone-of-influence slice searched, when one was used

    @property
    def exit_code(self) -> int:
        """1 violation found, 0 none to the depth asked, 3 inconclusive."""
        return {"violation": 1, "none": 0}.get(self.verdict, 3)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap bmc", "system": self.system, "variant": self.variant, "verdict": self.verdict,
                "depth": self.depth, "max_n": self.max_n, "property": self.violated, "kind": self.kind,
                "user": self.user, "steps": len(self.actions) - 1 if self.actions else 0,
                "actions": [{"action": a, "params": p} for a, p in zip(self.actions, self.picks, strict=True)],
                "ms": round(self.ms, 1), "per_depth_ms": [round(x, 1) for x in self.per_depth_ms],
                "seed": self.seed, "z3": self.z3_version, "reason": self.reason, "sliced": self.sliced}


def variant_names(system: System) -> list[str]:
    """The switch names that rebuild ``system`` with :meth:`Variant.from_names`."""
    if system.name == "queue":
        return [] if system.variant.get("queue_alloc_outside_lock", True) else ["queue_alloc_under_lock"]
    return sorted(k for k, v in system.variant.items() if v and k != "queue_alloc_outside_lock")


def system_from_meta(meta: Mapping[str, Any]) -> System:
    """The system a trace was produced on (from ``#meta.system`` and ``#meta.variant``)."""
    from .protocol import Variant, system_by_name

    return system_by_name(str(meta.get("system", "socket")), Variant.from_names(list(meta.get("variant", []))))


# --- search ---------------------------------------------------------------------------------------
class _Unrolling:
    """States ``s0..sd`` and step selectors of one user class, in one incremental solver."""

    def __init__(self, system: System, actions: list[Action], max_n: int, timeout_ms: int, seed: int,
                 depth: int):
        self.system, self.actions, self.max_n = system, actions, max_n
        # counters that bound quantifier ranges (the queue's id_seq) grow by at most one per step
        self.scoped = {n: depth + 1 for n in scoped_counters(system)}
        self.enc = Encoder(system, count_mode="unrolled", unroll_bound=max_n, scoped=self.scoped,
                           index_scope=INDEX_SCOPE)
        self.solver = make_solver(timeout_ms=timeout_ms, seed=seed)
        self.timeout_ms = timeout_ms
        self.states: list[SymState] = []
        self.sels: list[Any] = []
        self.params: list[list[dict[str, Any]]] = []
        self.sizes: list[Any] = []
        s0 = self._new_state()
        self.solver.add(self.enc.expr(system.init, s0), self.enc.expr(system.assumptions, s0))
        self._flush_side()

    def _new_state(self) -> SymState:
        st = self.enc.fresh_state(f"s{len(self.states)}")
        self.states.append(st)
        for n in size_vars(self.system):
            self.sizes.append(st[n])
            self.solver.add(st[n] <= self.max_n)
        for n, b in self.scoped.items():
            self.solver.add(st[n] <= b - 1)
        return st

    def _flush_side(self) -> None:
        if self.enc.side:
            self.solver.add(*self.enc.side)
            self.enc.side.clear()

    def extend(self) -> None:
        """Add one more step: a selector, per-action parameters, and the next state."""
        pre = self.states[-1]
        k = len(self.sels)
        post = self._new_state()
        sel = z3.Int(f"action@{k}")
        self.sels.append(sel)
        self.solver.add(0 <= sel, sel < len(self.actions))
        plist = []
        cases = []
        nxt: dict[str, Any] = {n: pre[n] for n in pre.terms}  # frame: unchanged unless modified
        for idx, a in enumerate(self.actions):
            params = make_params(a, f"s{k}")
            plist.append(params)
            succ = successor(self.enc, a, pre, params, post.tag)
            cases.append(z3.Implies(sel == idx, z3.And(*param_constraints(self.enc, a, pre, params),
                                                       *range_conditions(self.enc, a, pre, params),
                                                       self.enc.expr(a.guard, pre, params))))
            for n in a.modifies:
                nxt[n] = z3.If(sel == idx, succ[n], nxt[n])
        self.params.append(plist)
        self.solver.add(*cases)
        self.solver.add(*[post[n] == nxt[n] for n in post.terms])
        self._flush_side()

    def expr(self, e: Expr, st: SymState, params: Mapping[str, Any] | None = None) -> Any:
        t = self.enc.expr(e, st, params)
        self._flush_side()
        return t


def scoped_counters(system: System) -> list[str]:
    """Integer state variables (not ring sizes) used in quantifier bounds: BMC bounds them by the
    depth + 1, which holds for counters that start at 0 and grow by at most one per step (the
    queue's ``id_seq``); it is a scope restriction stated in every report."""
    from .expr import Count, Quant, free_vars

    ints = {v.name for v in system.state if v.sort == "int"} - set(size_vars(system))
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, (Quant, Count)):
            found.update(free_vars(x.hi) & ints)
            walk(x.body)
        for f in ("args",):
            for a in getattr(x, f, ()) or ():
                walk(a)
        for f in ("array", "index", "cond", "then", "other"):
            if hasattr(x, f):
                walk(getattr(x, f))

    for inv in system.invariants:
        walk(inv.formula)
    for a in system.actions:
        walk(a.guard)
    return sorted(found)


def _props(system: System, user: str) -> tuple[list[tuple[str, Expr]], list[tuple[str, str, Expr]]]:
    invs = [(i.name, i.formula) for i in system.invariants if user == "well-behaved" or i.user == "any"]
    steps = [(sp.name, an, f) for sp in system.step_properties if user == "well-behaved" or sp.user == "any"
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
        if res.verdict != "violation":
            res.sliced = note + " (an over-approximation: nothing there means nothing in the system)"
            return res
        # the slice over-approximates: the system has no violation shallower than the slice's
        full = bmc(system, depth=depth, max_n=max_n, timeout_ms=timeout_ms, seed=seed, properties=properties,
                   slice_=False, min_depth=res.depth)
        full.sliced = note + " found a candidate; confirmed on the full system" \
            if full.verdict == "violation" else note + " found a spurious candidate"
        full.ms += res.ms
        return full
    res = BmcResult(system.name, variant_names(system), "none", depth, max_n, seed=seed)
    t0 = time.perf_counter()
    classes = [("any", list(system.actions))]
    honest = [a for a in system.actions if a.actor != "adversary"]
    if any(i.user == "well-behaved" for i in system.invariants) or \
            any(sp.user == "well-behaved" for sp in system.step_properties):
        classes.append(("well-behaved", honest))
    unrolls = {user: _Unrolling(system, acts, max_n, timeout_ms, seed, depth) for user, acts in classes}
    for d in range(depth + 1):
        td = time.perf_counter()
        for user, _acts in classes:
            u = unrolls[user]
            if d > 0:
                u.extend()
            invs, steps = _props(system, user)
            if d < min_depth:
                invs, steps = [], []
            if properties is not None:
                invs = [x for x in invs if x[0] in properties]
                steps = [x for x in steps if x[0] in properties]
            bad = []
            st = u.states[d]
            for name, f in invs:
                bad.append((name, "invariant", None, z3.Not(u.expr(f, st))))
            if d > 0:
                for name, an, f in steps:
                    idx = [a.name for a in u.actions].index(an) if an in [a.name for a in u.actions] else None
                    if idx is None:
                        continue
                    bad.append((name, "step", an, z3.And(u.sels[d - 1] == idx,
                                                         z3.Not(u.expr(f, u.states[d - 1], u.params[d - 1][idx])))))
            if not bad:
                continue
            s = u.solver
            s.push()
            s.add(z3.Or(*[b[3] for b in bad]))
            r = s.check()
            if r == z3.unknown:
                res.verdict, res.reason = "unknown", s.reason_unknown()
                s.pop()
                res.ms = (time.perf_counter() - t0) * 1e3
                return res
            if r == z3.sat:
                m = _readable_model(u, s, d)
                name, kind = next((b[0], b[1]) for b in bad if z3.is_true(m.eval(b[3], model_completion=True)))
                s.pop()
                _fill(res, u, m, d)
                res.verdict, res.violated, res.kind, res.user, res.depth = "violation", name, kind, user, d
                res.per_depth_ms.append((time.perf_counter() - td) * 1e3)
                res.ms = (time.perf_counter() - t0) * 1e3
                return res
            s.pop()
        res.per_depth_ms.append((time.perf_counter() - td) * 1e3)
        if on_depth:
            on_depth(d, res.per_depth_ms[-1])
    res.ms = (time.perf_counter() - t0) * 1e3
    return res


READABLE_BUDGET_S = 1.5  # time spent making a found trace readable, at most (each check bounded)


def _readable_model(u: _Unrolling, s: z3.Solver, d: int) -> z3.ModelRef:
    """Fewest frames, then small parameters and constant initial arrays (each only if still sat),
    within :data:`READABLE_BUDGET_S`: a check that runs out of time keeps the trace found so far."""
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


def _val(m: z3.ModelRef, t: Any) -> Any:
    v = m.eval(t, model_completion=True)
    if z3.is_bool(v):
        return z3.is_true(v)
    return v.as_long()


def _fill(res: BmcResult, u: _Unrolling, m: z3.ModelRef, d: int) -> None:
    res.actions = ["init"]
    res.picks = [{}]
    for k in range(d):
        idx = _val(m, u.sels[k])
        a = u.actions[idx]
        res.actions.append(a.name)
        res.picks.append({n: _val(m, t) for n, t in u.params[k][idx].items()})
    ints = [abs(_val(m, st[v.name])) for st in u.states[: d + 1] for v in u.system.state + u.system.constants
            if v.sort == "int"]
    ints += [abs(v) for p in res.picks for v in p.values() if isinstance(v, int) and not isinstance(v, bool)]
    span = max([u.max_n] + [x + 2 for x in ints if x <= 64])
    dom = list(range(0, span))
    for st in u.states[: d + 1]:
        row = {}
        for v in u.system.constants + u.system.state:
            if v.sort.endswith("array"):
                row[v.name] = {k: _val(m, z3.Select(st[v.name], k)) for k in dom}
            else:
                row[v.name] = _val(m, st[v.name])
        res.states.append(row)
    s0 = u.states[0]
    for v in u.system.constants + u.system.state:
        if v.sort.endswith("array"):
            res.defaults[v.name] = _val(m, z3.Select(s0[v.name], -(1 << 40)))


# --- output ---------------------------------------------------------------------------------------
def trace_to_itf(res: BmcResult) -> dict[str, Any]:
    """The trace as an ITF document (see :mod:`nlmmap.spec.itf`)."""
    meta = {"source": "nlmmap bmc", "system": res.system, "variant": res.variant, "invariant": res.violated,
            "kind": res.kind, "user": res.user, "seed": res.seed, "z3": res.z3_version, "max_n": res.max_n,
            "defaults": res.defaults, "description": f"{res.violated} violated after {len(res.actions) - 1} steps"}
    return make_trace(meta, res.states, res.actions, res.picks)


def format_trace(res: BmcResult) -> str:
    """The trace as a step table: action, ring statuses, heads and the other variables that change."""
    from .abi import Status

    names = {int(s): s.name for s in Status}
    sysm = system_from_meta({"system": res.system, "variant": res.variant})
    changing = [v.name for v in sysm.state + sysm.constants
                if len({json.dumps(_cell(v.name, st, sysm, names)) for st in res.states}) > 1]
    cols = ["step", "action"] + changing
    rows = []
    for i, (st, a, p) in enumerate(zip(res.states, res.actions, res.picks, strict=True)):
        args = ", ".join(f"{k}={v}" for k, v in p.items())
        rows.append([str(i), f"{a}({args})" if a != "init" else "init"] + [_cell(n, st, sysm, names) for n in changing])
    widths = [max(len(c), *(len(r[j]) for r in rows)) for j, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.append(f"violated: {res.violated} ({res.kind}, user={res.user}) after {len(res.actions) - 1} steps")
    return "\n".join(out)


def _cell(name: str, st: Mapping[str, Any], sysm: System, names: dict[int, str]) -> str:
    v = st[name]
    if not isinstance(v, dict):
        return str(v).lower() if isinstance(v, bool) else str(v)
    prefix = name.split("_", 1)[0]
    size = st.get(f"{prefix}_frame_nr")
    keys = sorted(v)
    if isinstance(size, int) and prefix in ("rx", "tx", "frame"):
        keys = [k for k in keys if 0 <= k < size]
    elif "rx_frame_nr" in st and name in ("frame_id",):
        keys = [k for k in keys if 0 <= k < st["rx_frame_nr"]]
    else:  # id- or cpu-indexed arrays: show the indices that are set
        keys = [k for k in keys if v[k] not in (False, 0)]
        return "{" + ",".join(str(k) if isinstance(v[k], bool) else f"{k}:{v[k]}" for k in keys) + "}"
    vals = [v[k] for k in keys]
    if name.endswith("status"):
        return "[" + " ".join(names.get(x, str(x)) for x in vals) + "]"
    return "[" + " ".join(("T" if x else "F") if isinstance(x, bool) else str(x) for x in vals) + "]"


# --- replay ---------------------------------------------------------------------------------------
@dataclass
class ReplayResult:
    """Outcome of a replay: properties broken (in order of appearance), the expected one, and
    states where the replayed state disagrees with the recorded one."""

    expected: str | None
    violated: list[tuple[int, str]]
    mismatches: list[tuple[int, str]]
    steps: int

    @property
    def reproduced(self) -> bool:
        """The expected property is broken, at the last step, and the recorded states agree."""
        return bool(self.expected) and any(n == self.expected and i == self.steps for i, n in self.violated) \
            and not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap replay", "expected": self.expected, "reproduced": self.reproduced,
                "violated": [{"step": i, "property": n} for i, n in self.violated],
                "mismatches": [{"step": i, "variable": n} for i, n in self.mismatches], "steps": self.steps}


def map_state_factory(system: System, first: Mapping[str, Any], defaults: Mapping[str, Any]) -> MapState:
    """The default concrete state: a :class:`MapState` with arrays as :class:`DefaultArray`."""
    values = {}
    for v in system.constants + system.state:
        x = first[v.name]
        values[v.name] = DefaultArray(defaults.get(v.name, False if v.sort == "bool_array" else 0), x) \
            if v.sort.endswith("array") else x
    return MapState(values)


def replay(doc: Mapping[str, Any], *, system: System | None = None,
           state_factory: Callable[[System, Mapping[str, Any], Mapping[str, Any]], Any] = map_state_factory,
           apply: Callable[[Action, Any, Mapping[str, Any]], None] = apply_action) -> ReplayResult:
    """Re-run an ITF trace: build the concrete state from the first ITF state with
    ``state_factory``, take each state's ``mbt::actionTaken`` with its ``mbt::nondetPicks`` through
    ``apply``, and collect the invariants (after each step) and step properties (before it) that
    break. The state object only needs ``state[name]`` plus what ``apply`` uses, so another
    executable model can be plugged in."""
    meta = doc.get("#meta", {})
    sysm = system or system_from_meta(meta)
    user = str(meta.get("user") or "any")
    states = [decode_value(s) for s in doc["states"]]
    st = state_factory(sysm, states[0], meta.get("defaults", {}))
    violated: list[tuple[int, str]] = [(0, n) for n in violated_invariants(sysm, st, user=user)]
    mismatches: list[tuple[int, str]] = []
    for i, raw in enumerate(doc["states"][1:], start=1):
        a = sysm.action(raw[ACTION_KEY])
        picks = decode_value(raw.get(PICKS_KEY, {}))
        violated += [(i, n) for n in violated_step_properties(sysm, a, st, picks, user=user)]
        apply(a, st, picks)
        violated += [(i, n) for n in violated_invariants(sysm, st, user=user)]
        rec = states[i]
        for v in sysm.constants + sysm.state:
            want = rec.get(v.name)
            if want is None:
                continue
            if isinstance(want, dict):
                if any(st[v.name][k] != x for k, x in want.items()):
                    mismatches.append((i, v.name))
            elif st[v.name] != want:
                mismatches.append((i, v.name))
    return ReplayResult(meta.get("invariant"), violated, mismatches, len(doc["states"]) - 1)


def run_bmc_cli(system: System, *, depth: int, max_n: int, out_path: str | None, json_out: bool, out: TextIO,
                err: TextIO, timeout_ms: int = 60000, seed: int = DEFAULT_SEED,
                properties: list[str] | None = None) -> int:
    """``nlmmap bmc``: search, print the table on ``err``, save ITF, optional JSON on ``out``."""
    from .itf import write_itf

    err.write(f"nlmmap bmc: system {system.name}, variant {variant_names(system) or ['default']}, "
              f"depth <= {depth}, ring sizes <= {max_n}, other integer parameters < {INDEX_SCOPE}, "
              f"z3 {z3.get_full_version()}, seed {seed}\n")
    err.flush()

    def tick(d: int, ms: float) -> None:
        err.write(f"  depth {d}: no violation ({ms:.0f} ms)\n")
        err.flush()

    known = {i.name for i in system.invariants} | {sp.name for sp in system.step_properties}
    if properties and set(properties) - known:
        err.write(f"nlmmap bmc: unknown property {sorted(set(properties) - known)}; known: {sorted(known)}\n")
        return 2
    res = bmc(system, depth=depth, max_n=max_n, timeout_ms=timeout_ms, seed=seed, on_depth=tick,
              properties=properties)
    if res.verdict == "violation":
        err.write(format_trace(res) + "\n")
        if out_path:
            from .itf import write_itf

            write_itf(out_path, trace_to_itf(res))
            err.write(f"trace saved to {out_path}\n")
    elif res.verdict == "none":
        err.write(f"no violation up to depth {depth} with ring sizes <= {max_n} ({res.ms / 1e3:.2f} s)\n")
    else:
        err.write(f"inconclusive: solver returned unknown ({res.reason})\n")
    if res.sliced:
        err.write(f"  ({res.sliced})\n")
    err.write(f"nlmmap bmc: {res.verdict} in {res.ms / 1e3:.2f} s\n")
    err.flush()
    if json_out:
        d = res.as_dict()
        d["trace_file"] = out_path if res.verdict == "violation" else None
        out.write(json.dumps(d, sort_keys=True) + "\n")
    return res.exit_code
