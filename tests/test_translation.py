"""The z3 encoding checked against the executable model, step by step (design.md section 3).

Random traffic drives a model socket; every spec action it takes is recorded with its concrete
pre- and post-state. Two directions are checked on small rings:

* every recorded (pre, post) pair satisfies the action's z3 transition formula, and the formula
  *forces* that post-state (no other post-state is allowed from that pre-state);
* from recorded pre-states, every action with parameters from small domains is enabled in z3
  exactly when the model's interpreter says so, so every step the formula allows is one the
  model can take.
"""

from __future__ import annotations

import itertools
import struct

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from nlmmap.model import Kernel, ModelConfig, ModelSocket
from nlmmap.spec.abi import NETLINK_NO_ENOBUFS, NETLINK_RX_RING, NETLINK_TX_RING, RingRequest
from nlmmap.spec.cells import CellEncoder
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.netlink import NLM_F_ACK, NLM_F_REQUEST, build_message
from nlmmap.spec.system import enabled
from nlmmap.spec.z3enc import Encoder, make_params, make_solver, param_constraints, successor

K = 4  # frames per ring at most (the cells of the finite-scope encoding)


class Interner:
    """Byte strings (TX payload areas, private copies) as small ints: the spec only compares them."""

    def __init__(self):
        self.ids: dict[bytes, int] = {}

    def __call__(self, v):
        if isinstance(v, (bytes, bytearray)):
            if not any(v):
                return 0  # a zeroed payload area is the spec's 0
            return self.ids.setdefault(bytes(v), 1000 + len(self.ids))
        return v


def snapshot(s: ModelSocket, intern: Interner) -> dict:
    vals = {}
    for v in s.system.state:
        x = s.view[v.name]
        if v.sort.endswith("array"):
            n = s.g["rx_frame_nr"] if v.name.startswith("rx_") else s.g["tx_frame_nr"]
            vals[v.name] = [intern(x[k]) for k in range(n)]
        else:
            vals[v.name] = intern(x)
    return vals


def pin(enc_state, vals: dict) -> list:
    out = []
    for name, v in vals.items():
        t = enc_state[name]
        if isinstance(v, list):
            out += [z3.Select(t, k) == v[k] for k in range(len(v))]
        else:
            out.append(t == v)
    return out


def record(monkeypatch):
    steps: list[tuple[str, dict, dict, dict]] = []
    intern = Interner()
    real = ModelSocket.step

    def spy(self, action, **params):
        pre = snapshot(self, intern)
        real(self, action, **params)
        steps.append((action, {k: intern(v) for k, v in params.items()}, pre, snapshot(self, intern)))

    monkeypatch.setattr(ModelSocket, "step", spy)
    return steps, intern


def drive(ops) -> ModelSocket:
    s = Kernel(ModelConfig(check_invariants="never")).socket()
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 1, 1024, 4).pack())
    s.setsockopt(NETLINK_TX_RING, RingRequest(4096, 1, 2048, 2).pack())
    s.mmap(8192)
    for op, a, b in ops:
        try:
            if op == 0:
                s.deliver(bytes(a * 7), "ring" if b % 2 else "copy")
            elif op == 1:
                s.poke(1024 * (a % 4), struct.pack("=I", (0, 4, 0, 2, 77)[b % 5]))
            elif op == 2:
                off = 4096 + 2048 * (a % 2)
                s.poke(off + 24, build_message(1, NLM_F_REQUEST | NLM_F_ACK, 1, 0))
                s.poke(off + 4, struct.pack("=I", (16, 3000)[b % 2]))
                s.poke(off, struct.pack("=I", 2))
                s.sendmsg(None, ("kernel", "peer")[a % 2])
            elif op == 3:
                s.recvmsg(64)
            elif op == 4:
                s.poll()
            elif op == 5:
                s.setsockopt(NETLINK_NO_ENOBUFS, struct.pack("=I", b % 2))
            elif op == 6 and s.fits(a):
                j = s.ring_alloc(a)
                if j is not None and b % 2:
                    s.ring_abort(j)
                elif j is not None:
                    s.ring_publish(j, b"x")
        except NetlinkError:
            pass
    return s


ops_strategy = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 200), st.integers(0, 9)), max_size=20)


@settings(max_examples=6, deadline=None)
@given(ops=ops_strategy)
def test_model_steps_satisfy_and_determine_the_z3_transition(ops):
    """The unbounded encoding the prover uses (nlmmap.spec.z3enc): the model's step is allowed and
    is the only post-state allowed from its pre-state."""
    with pytest.MonkeyPatch.context() as mp:
        steps, _ = record(mp)
        s = drive(ops)
    system = s.system
    for action, params, pre_vals, post_vals in steps:
        a = system.action(action)
        enc = Encoder(system)
        pre = enc.fresh_state("pre")
        prm = make_params(a, "p")
        post = successor(enc, a, pre, prm, "post")
        solver = make_solver(timeout_ms=10000, seed=0)
        solver.add(*pin(pre, pre_vals), *[prm[k] == v for k, v in params.items()])
        solver.add(*param_constraints(enc, a, pre, prm), enc.expr(a.guard, pre, prm))
        solver.add(*enc.count_facts())
        goal = pin(post, post_vals)
        assert solver.check(z3.And(*goal)) == z3.sat, f"{action}{params}: model step not allowed by z3"
        assert solver.check(z3.Not(z3.And(*goal))) == z3.unsat, f"{action}{params}: z3 allows another post"


#: Parameter values to try, by name (others: a few values of their sort).
PARAM_DOMAIN = {"j": range(-1, 4), "size": (0, 500, 1001), "v": (0, 1, 2, 3, 4, 77), "len": (0, 16, 3000),
                "data": (1000,), "on": (False, True), "n": (1, 2), "cap": (0, 1000), "group": (0, 5),
                "pollin": (False, True), "pollerr": (False, True)}


@settings(max_examples=8, deadline=None)
@given(ops=ops_strategy)
def test_every_step_z3_allows_is_one_the_model_can_take(ops):
    """In the cell encoding (what BMC unrolls), every action with parameters from small domains is
    enabled exactly when the model's interpreter says so, from recorded pre-states."""
    with pytest.MonkeyPatch.context() as mp:
        steps, intern = record(mp)
        s = drive(ops)
    system = s.system
    seen = set()
    for _, _, pre_vals, _ in steps[-3:]:
        state = {k: v for k, v in pre_vals.items()}

        class Concrete(dict):
            def assign(self, *a):
                raise AssertionError

            store = assign

        conc = Concrete(state)
        # one solver per pre-state, pinned to it; each action's guard and each parameter choice
        # are checked as assumptions of that solver (a fresh encoder and solver per choice took
        # ~8x longer, for the same answers)
        enc = CellEncoder(system, frames=K)
        pre = enc.fresh_state("pre")
        solver = make_solver(timeout_ms=10000, seed=0)
        solver.add(*_cell_pin(enc, pre, pre_vals))
        for a in system.actions:
            names = [p.name for p in a.params]
            doms = [PARAM_DOMAIN.get(p.name, (False, True) if p.sort == "bool" else (0, 1, 16)) for p in a.params]
            prm = enc.make_params(a, "p")
            cond = z3.And(*enc.param_constraints(a, pre, prm), enc.expr(a.guard, pre, prm))
            for combo in itertools.product(*doms):
                params = dict(zip(names, combo, strict=True))
                try:
                    want = enabled(a, conc, params)
                except IndexError:
                    continue  # an index outside the ring: the model never asks
                answer = solver.check(cond, *[prm[k] == v for k, v in params.items()])
                assert answer != z3.unknown, f"{a.name}{params}: z3 answered unknown ({solver.reason_unknown()})"
                got = answer == z3.sat
                assert got == want, f"{a.name}{params}: interpreter says {want}, z3 says {got}"
                seen.add(got)
    assert seen == {True, False}  # both enabled and disabled steps were compared


def _cell_pin(enc, st, vals: dict) -> list:
    """The cell state ``st`` holding the model's values (arrays over the ring's frames)."""
    out = []
    for name, v in vals.items():
        t = st[name]
        if isinstance(v, list):
            out += [t.cells[k] == v[k] for k in range(len(v)) if k in t.cells]
        else:
            out.append(t == v)
    return out


@settings(max_examples=6, deadline=None)
@given(ops=ops_strategy)
def test_model_steps_satisfy_and_determine_the_cell_transition(ops):
    """The same check for the finite-scope cell encoding that bounded model checking and the
    prover's scopes use (nlmmap.spec.cells): the model's step is allowed, inside the cells, and
    the only post-state the encoding allows from that pre-state."""
    with pytest.MonkeyPatch.context() as mp:
        steps, _ = record(mp)
        s = drive(ops)
    system = s.system
    for action, params, pre_vals, post_vals in steps:
        a = system.action(action)
        enc = CellEncoder(system, frames=K)
        pre = enc.fresh_state("pre")
        prm = enc.make_params(a, "p")
        post, inside = enc.successor(a, pre, prm, "post")
        solver = make_solver(timeout_ms=10000, seed=0)
        solver.add(*_cell_pin(enc, pre, pre_vals), *[prm[k] == v for k, v in params.items()])
        solver.add(*enc.param_constraints(a, pre, prm), *[z3.BoolVal(c) if isinstance(c, bool) else c for c in inside],
                   enc.expr(a.guard, pre, prm))
        goal = [c if not isinstance(c, bool) else z3.BoolVal(c) for c in _cell_pin(enc, post, post_vals)]
        assert solver.check(z3.And(*goal)) == z3.sat, f"{action}{params}: model step not allowed by the cells"
        assert solver.check(z3.Not(z3.And(*goal))) == z3.unsat, f"{action}{params}: the cells allow another post"
