"""Rules of the spec that the byte-level model cannot show, checked on the spec's own interpreter:
3.10's zero-copy eligibility (11.3), which depends on other holders of the socket file (dup, fork,
SCM_RIGHTS), a thing the model's API has no call for."""

from __future__ import annotations

import pytest

from nlmmap.spec.explore import initial_states
from nlmmap.spec.expr import evaluate
from nlmmap.spec.protocol import Variant, socket_system
from nlmmap.spec.protocol.names import zero_copy_exclusive
from nlmmap.spec.system import apply_action, enabled

ZC = socket_system(Variant(tx_zero_copy=True))


def _step(st, name, **params):
    a = ZC.action(name)
    assert enabled(a, st, params), f"{name}{params} is not enabled"
    apply_action(a, st, params)


def _tx_frame_at_head():
    """One TX frame of room 2024, mapped once, a VALID 16-byte message in it, the walk idle."""
    st = initial_states(ZC, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    _step(st, "set_tx_ring", n=1, cap=2024)
    _step(st, "mmap")
    _step(st, "fill_tx_frame", j=0, len=16, data=7)
    return st


@pytest.mark.parametrize(("mapped", "shared", "exclusive"), [
    (0, False, True), (1, False, True), (0, True, True),  # file count 1 + mappings + other holders <= 2
    (1, True, False), (2, False, False), (2, True, False),  # ... and mapped <= 1
])
def test_zero_copy_eligibility_is_file_count_at_most_2_and_one_mapping(mapped, shared, exclusive):
    """netlink_mmap_sendmsg (3.10): ``if (file_count(sock->file) > 2 || atomic_read(&nlk->mapped) > 1)
    excl = false``, the file count being the user's descriptor, one reference per mapping, and one
    for any other holder."""
    assert evaluate(zero_copy_exclusive(), {"mapped": mapped, "file_shared": shared}) is exclusive


def test_sharing_the_file_turns_the_zero_copy_claim_into_a_copy():
    """With the file shared (dup, fork, SCM_RIGHTS) the walk can only copy the frame; unshared, it
    may claim it in place (the spec leaves the destination open: the copy stays possible, for a
    peer); a socket starts unshared."""
    st = _tx_frame_at_head()
    claim, copy = ZC.action("tx_claim"), ZC.action("tx_copy")
    assert st["file_shared"] is False
    assert enabled(claim, st, {}) and enabled(copy, st, {})
    _step(st, "share_file")
    assert not enabled(claim, st, {}) and enabled(copy, st, {})
    _step(st, "unshare_file")
    assert enabled(claim, st, {})
