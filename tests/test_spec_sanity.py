"""The spec is not vacuous: every action of every system (Linux 4.5 and each history switch) fires in
a reachable state of a small scope, explored with the spec's own interpreter. A bug that makes an
initial condition or a guard unsatisfiable (frames that start non-UNUSED, a ring of at least two
frames, a guard that contradicts itself) would otherwise let every proof pass, since an action that
never fires preserves every invariant."""

from __future__ import annotations

import dataclasses

import pytest

from nlmmap.spec.explore import explore
from nlmmap.spec.expr import Op, _lift, and_, eq, render
from nlmmap.spec.protocol import Variant, queue_system, socket_system
from nlmmap.spec.protocol.queue import ID_SPACE, N_IDS
from nlmmap.spec.protocol.variants import SWITCH_SYSTEM, VARIANT_SWITCHES


def _conjuncts(g):
    if isinstance(g, Op) and g.op == "and":
        return [c for a in g.args for c in _conjuncts(a)]
    return [g]


def _small_id_space(system, ids: int):
    """The queue system with ``ids`` packet ids instead of 2^32 (its proofs hold for any id space
    of two or more): the id wrap a batch verdict walks (verdict_batch_wrap) is then a few steps away."""
    want = render(eq(N_IDS, ID_SPACE))
    cs = _conjuncts(_lift(system.init))
    hits = [i for i, c in enumerate(cs) if render(c) == want]
    assert len(hits) == 1, "the queue system's init no longer fixes the id space to 2^32"
    cs[hits[0]] = _lift(eq(N_IDS, ids))
    return dataclasses.replace(system, init=and_(*cs))


def _cases():
    yield pytest.param(socket_system(), id="socket")
    for sw in VARIANT_SWITCHES:
        if SWITCH_SYSTEM[sw] == "socket":
            yield pytest.param(socket_system(Variant(**{sw: True})), id=f"socket-{sw}")
    for mainline in (False, True):
        yield pytest.param(_small_id_space(queue_system(Variant(queue_alloc_outside_lock=mainline)), 3),
                           id="queue-" + ("mainline" if mainline else "fixed"))


@pytest.mark.parametrize("system", list(_cases()))
def test_every_action_fires_in_a_reachable_state(system):
    sizes = {"rx_frame_nr": [1], "tx_frame_nr": [1]} if system.name == "socket" else {"rx_frame_nr": [1, 2]}
    G = explore(system, sizes=sizes, counter_bound=1 if system.name == "socket" else 4)
    assert G.number_of_nodes() > 1
    fired = {d["action"] for _, _, d in G.edges(data=True)}
    never = [a.name for a in system.actions if a.name not in fired]
    assert not never, f"{system.name} {system.variant}: never enabled in {G.number_of_nodes()} states: {never}"
