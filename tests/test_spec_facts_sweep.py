"""Facts of the spec that a mutation sweep of nlmmap.spec found unpinned (a one-token change to
each kept every other test green), checked on the spec's own interpreter in the style of
tests/test_spec_facts_more.py. Each test names the fact and its section of kernel-protocol.md, and
each was seen failing with its mutant applied (2026-12-03: 138 of 210 sampled mutants swept, 6
real gaps; the rest killed by the suite or equivalent)."""

from __future__ import annotations

import pytest

from nlmmap.spec.explore import initial_states
from nlmmap.spec.expr import evaluate
from nlmmap.spec.protocol import socket_system
from nlmmap.spec.system import apply_action

S = socket_system()


def _socket(rx: int = 2, tx: int = 2, *, mapped: bool = True):
    """A socket with an RX ring of ``rx`` frames of room 1000 and a TX ring of ``tx`` frames of room
    2024, mapped once (section 3.1, 4)."""
    st = initial_states(S, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    if rx:
        apply_action(S.action("set_rx_ring"), st, {"n": rx, "cap": 1000})
    if tx:
        apply_action(S.action("set_tx_ring"), st, {"n": tx, "cap": 2024})
    if mapped:
        apply_action(S.action("mmap"), st, {})
    return st


def test_a_mapping_has_only_an_rx_and_a_tx_ring():
    """MappingLayout.ring (2.4): the one mapping holds the RX ring, then the TX ring; any other name
    is EINVAL, not silently the TX ring."""
    from nlmmap.spec.abi import RingGeometry, mapping_layout
    from nlmmap.spec.errors import NetlinkError

    lay = mapping_layout(RingGeometry(4096, 1, 2048, 2), RingGeometry(4096, 1, 2048, 2))
    assert lay.ring("tx") is lay.tx and lay.ring("rx") is lay.rx
    for name in ("TX", "", "both"):
        with pytest.raises(NetlinkError) as e:
            lay.ring(name)
        assert e.value.errno == "EINVAL"


@pytest.mark.parametrize("action", ["recvmsg_empty", "poll"])
def test_s6_5_rcv_wake_on_an_empty_queue_marks_the_episode_drained(action):
    """netlink_rcv_wake (6.5, 7, 8) on an empty receive queue clears CONGESTED, and the ghost
    ``queue_drained`` records it (what CongestionEndsWhenDrained quantifies over: if it never
    became true the property would hold vacuously)."""
    from nlmmap.spec.system import enabled

    st = _socket(rx=2)
    st["congested"] = True
    a = S.action(action)
    params = a.choose(st) if a.choose else {}
    assert enabled(a, st, params)
    apply_action(a, st, params)
    assert (st["congested"], st["queue_drained"]) == (False, True)


@pytest.mark.parametrize(("code", "name"), [(35, "EDEADLK"), (-35, "EDEADLK"), (11, "EAGAIN"), (95, "EOPNOTSUPP")])
def test_errno_names_are_the_kernels_spelling_of_each_alias(code, name):
    """errno.errorcode spells three Linux numbers by their alias (EDEADLOCK, EWOULDBLOCK, ENOTSUP);
    the adapter protocol and the kernel's headers use EDEADLK, EAGAIN and EOPNOTSUPP (13.8)."""
    from nlmmap.spec.errors import errno_code, errno_name

    assert errno_name(code) == name and errno_code(name) == abs(code)


def test_s13_3_a_group_is_an_int_not_a_bool():
    """check_group: a group number is a non-negative int; True is no group (EINVAL), as for every
    other integer argument of the spec (nonneg_int, u32)."""
    from nlmmap.spec import family
    from nlmmap.spec.errors import NetlinkError

    for bad in (True, False):
        with pytest.raises(NetlinkError) as e:
            family.check_group(bad)
        assert e.value.errno == "EINVAL"


def test_both_systems_are_found_by_name():
    """system_by_name (what nlmmap prove --system and the docs use): "socket" and "queue" name their
    systems; anything else is EINVAL."""
    from nlmmap.spec.errors import NetlinkError
    from nlmmap.spec.protocol import system_by_name

    assert system_by_name("socket").name == "socket" and system_by_name("queue").name == "queue"
    with pytest.raises(NetlinkError) as e:
        system_by_name("sockets")
    assert e.value.errno == "EINVAL"


def test_s11_3_a_new_socket_file_has_no_other_holder():
    """3.10 (11.3): at socket() the user's descriptor is the file's only reference (no dup, fork or
    SCM_RIGHTS yet): the zero-copy system's initial condition refuses a shared file."""
    from nlmmap.spec.protocol import Variant

    ZC = socket_system(Variant(tx_zero_copy=True))
    st = initial_states(ZC, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    assert evaluate(ZC.init, st.__getitem__) is True
    st["file_shared"] = True
    assert evaluate(ZC.init, st.__getitem__) is False
