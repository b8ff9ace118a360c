"""Graphs read off the spec (nlmmap.spec.graphs): the per-frame status machine follows the spec's
data and reachability, not guards alone; exploration is deterministic and uses the spec's
interpreter; variants show what each history switch changed."""

from __future__ import annotations

import doctest
from dataclasses import replace

import networkx as nx
import pytest

from nlmmap.spec import explore as explore_mod
from nlmmap.spec import graphs, scope
from nlmmap.spec.graphs import ABSENT, OTHER, explore, frame_status_edges, frame_status_machine
from nlmmap.spec.protocol import Variant, queue_system, socket_system
from nlmmap.spec.system import Store, System


@pytest.fixture(scope="module")
def machine() -> nx.MultiDiGraph:
    return frame_status_machine(socket_system())


@pytest.mark.parametrize("module", [graphs, explore_mod, scope], ids=lambda m: m.__name__)
def test_doctests_run(module):
    res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 1 and res.failed == 0


def test_reachability_not_guards_decides_well_behaved_edges(machine):
    """publish's guard only asks rx_owned[j] >= 1; in a reachable state of a well-behaved user that
    frame is RESERVED, so publish has exactly one well-behaved edge. Only the adversary (writing
    the status word of a frame the kernel holds) makes publish overwrite other statuses."""
    wb = {u[1] for u, v, d in machine.edges(data=True) if d["action"] == "publish" and d["user"] == "well-behaved"}
    anyuser = {u[1] for u, v, d in machine.edges(data=True) if d["action"] == "publish"}
    assert wb == {"RESERVED"}
    assert {"UNUSED", "COPY", "SKIP", OTHER} <= anyuser


def test_edges_carry_the_actions_side_and_section(machine):
    sys_ = socket_system()
    for u, v, k, d in machine.edges(keys=True, data=True):
        a = sys_.action(k)
        assert (d["action"], d["actor"], d["section"]) == (a.name, a.actor, a.section)
        assert d["ring"] == u[0] == v[0]
        # a status change is made only by an action that writes the status word or the ring size
        arr, size = f"{d['ring']}_status", f"{d['ring']}_frame_nr"
        assert set(a.modifies) & {arr, size}, (u, v, k)
        if d["actor"] == "adversary":
            assert d["user"] == "any"


def test_restricting_actors_recomputes_reachability(machine):
    honest = frame_status_edges(socket_system(), actors=["kernel", "user"])
    marked = {(d["ring"], u[1], v[1], d["action"]) for u, v, d in machine.edges(data=True)
              if d["user"] == "well-behaved"}
    assert honest == marked
    only_rx = frame_status_edges(socket_system(), actions=["set_rx_ring", "mmap", "alloc", "publish", "release_frame"])
    assert only_rx == {("rx", ABSENT, "UNUSED", "set_rx_ring"), ("rx", "UNUSED", "RESERVED", "alloc"),
                       ("rx", "RESERVED", "VALID", "publish"), ("rx", "VALID", "UNUSED", "release_frame")}


def test_machine_follows_the_spec_data():
    """Change one update of the spec (alloc claims a frame as VALID instead of RESERVED) and the
    machine changes with it: the edges come from the actions' updates, not from a list."""
    base = socket_system()
    alloc = base.action("alloc")
    ups = tuple(Store(u.array, u.index, 2) if isinstance(u, Store) and u.array == "rx_status" else u
                for u in alloc.updates)
    changed = System(**{**base.__dict__, "actions": tuple(replace(a, updates=ups) if a.name == "alloc" else a
                                                            for a in base.actions)})
    edges = frame_status_edges(changed, actors=["kernel", "user"])
    assert ("rx", "UNUSED", "VALID", "alloc") in edges
    assert ("rx", "UNUSED", "RESERVED", "alloc") not in edges
    assert not any(e[1] == "RESERVED" or e[2] == "RESERVED" for e in edges)  # nothing else claims a frame


def test_one_frame_and_two_frames_agree():
    assert frame_status_edges(socket_system(), frames=1) == frame_status_edges(socket_system(), frames=2)


def test_variants_show_what_each_switch_changed():
    default = frame_status_edges(socket_system(), loops=True)
    zc = frame_status_edges(socket_system(Variant(tx_zero_copy=True)), loops=True)
    sb = frame_status_edges(socket_system(Variant(skip_broken=True)), loops=True)
    # 3.10 zero-copy TX: the kernel holds the shared frame RESERVED, and frees it later
    assert ("tx", "VALID", "RESERVED", "tx_claim") in zc - default
    assert ("tx", "RESERVED", "UNUSED", "tx_release") in zc - default  # (it copies when the test fails: tx_copy)
    # before 4.4 an allocation stopping at a SKIP frame loses the message (FullMeansFull)
    assert sb - default == {("rx", "SKIP", "SKIP", "alloc_full")}
    assert default - sb == set()


def test_queue_machines():
    mainline = frame_status_edges(queue_system(Variant(queue_alloc_outside_lock=True)))
    fixed = frame_status_edges(queue_system(Variant(queue_alloc_outside_lock=False)))
    assert ("rx", "UNUSED", "RESERVED", "queue_alloc") in mainline
    assert ("rx", "UNUSED", "VALID", "queue_enqueue") in fixed and not any(e[2] == "RESERVED" for e in fixed)


def test_exploration_is_deterministic_and_counts_cuts():
    a = explore(socket_system(), sizes={"rx_frame_nr": [1], "tx_frame_nr": [1]}, actors=["kernel", "user"])
    b = explore(socket_system(), sizes={"rx_frame_nr": [1], "tx_frame_nr": [1]}, actors=["kernel", "user"])
    assert nx.node_link_data(a, edges="edges") == nx.node_link_data(b, edges="edges")
    assert [n for n, d in a.nodes(data=True) if d["initial"]] == [0]
    assert a.graph["cut"] > 0  # counters (mapped, rq_len, ...) would grow forever; the cut is counted


def test_bad_scope_is_a_clear_error():
    with pytest.raises(graphs.ExploreError, match="no ring size"):
        explore(socket_system(), sizes={"frames": [2]})
    with pytest.raises(graphs.ExploreError, match=">= 1"):
        explore(socket_system(), sizes={"rx_frame_nr": [0]})
    with pytest.raises(graphs.ExploreError, match="no actor"):
        frame_status_machine(socket_system(), actors=["root"])


def test_without_loops_is_the_machine_built_without_loops():
    with_loops = frame_status_machine(socket_system(), loops=True)
    plain = frame_status_machine(socket_system())
    derived = graphs.without_loops(with_loops)
    assert sorted(derived.edges(keys=True, data=True)) == sorted(plain.edges(keys=True, data=True))
    assert sorted(derived.nodes) == sorted(plain.nodes)


def test_graph_modules_never_import_drawing():
    """Exploration, reduction and coverage are pure: importing them loads no drawing code."""
    import subprocess
    import sys

    code = ("import sys, nlmmap.spec.graphs, nlmmap.spec.explore, nlmmap.spec.scope; "
            "print(sorted(m for m in sys.modules if m in ('nlmmap.spec.diagram', 'nlmmap.spec.docs')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_edge_coverage_counts_observed_steps():
    """The observer's rule (frame_changes over observed steps) against the machine's edges."""
    sys_ = socket_system()
    an = graphs.analyse(sys_)
    expected = frame_status_edges(sys_, actors=["kernel", "user"])
    steps = [({"rx_frame_nr": 1, "rx_status": [0], "tx_frame_nr": 0, "tx_status": []},
              {"rx_frame_nr": 1, "rx_status": [1], "tx_frame_nr": 0, "tx_status": []}, "alloc"),
             ({"rx_frame_nr": 1, "rx_status": [1], "tx_frame_nr": 0, "tx_status": []},
              {"rx_frame_nr": 1, "rx_status": [2], "tx_frame_nr": 0, "tx_status": []}, "publish"),
             ({"rx_frame_nr": 1, "rx_status": [2], "tx_frame_nr": 0, "tx_status": []},
              {"rx_frame_nr": 1, "rx_status": [5], "tx_frame_nr": 0, "tx_status": []}, "write_status")]
    observed = set().union(*(graphs.frame_changes(an, b, a, act) for b, a, act in steps))
    cov = graphs.edge_coverage(expected, observed)
    assert cov["covered"] == 2 and cov["total"] == len(expected)
    assert cov["unexpected"] == [("rx", "VALID", OTHER, "write_status")]  # an adversary edge: not in this machine
    assert ("rx", "UNUSED", "COPY", "copy_claim") in cov["missing"]


def test_node_states_are_the_plain_states_of_their_representatives():
    """Node ``state`` is read off the canonical key during the search; it must equal
    plain_state of a concrete state rebuilt from it (same keys, same values)."""
    from nlmmap.spec.explore import plain_state, state_of

    for sys_, sizes in ((socket_system(), {"rx_frame_nr": [2], "tx_frame_nr": [1]}),
                        (queue_system(), {"rx_frame_nr": [2]})):
        G = explore(sys_, sizes=sizes, actors=["kernel", "user"])
        an = graphs.analyse(sys_)
        for n in list(G.nodes)[:: max(1, G.number_of_nodes() // 50)]:
            assert plain_state(an, state_of(G, n)) == G.nodes[n]["state"]
