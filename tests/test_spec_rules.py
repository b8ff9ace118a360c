"""Rules of the spec that the byte-level model cannot show, checked on the spec's own interpreter:
3.10's zero-copy eligibility (11.3), which depends on other holders of the socket file (dup, fork,
SCM_RIGHTS), a thing the model's API has no call for; the writes of the user and the adversary
(section 5, 11.2), whose abstract values (``tx_data``) only the proofs read; and the mainline
queue's claim (12.2), a history variant the model runs only through its BMC counterexample."""

from __future__ import annotations

import pytest

from nlmmap.spec.abi import Status
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


# --- the adversary is as strong as the fact sheet says (section 5, 11.2) ----------------------------------
#: Each adversary action and the shared-memory words it writes: (state array, parameter).
ADVERSARY_WRITES = {
    "write_status": [("rx_status", "v")],
    "write_rx_header": [("rx_len", "len"), ("rx_group", "group")],
    "write_tx": [("tx_status", "v"), ("tx_len", "len"), ("tx_data", "data")],
}


@pytest.mark.parametrize("name", sorted(ADVERSARY_WRITES))
def test_the_adversary_writes_every_word_it_names(name):
    """Any thread of the user writes any value into these words of a mapped frame, at any time: a
    spec whose adversary drops one of its writes proves its invariants against a weaker user than
    the kernel faces (the proofs cannot notice that)."""
    S = socket_system()
    st = initial_states(S, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    apply_action(S.action("set_rx_ring"), st, {"n": 2, "cap": 1000})
    apply_action(S.action("set_tx_ring"), st, {"n": 2, "cap": 2024})
    apply_action(S.action("mmap"), st, {})
    a = S.action(name)
    assert a.actor == "adversary"
    params = {p.name: 1 for p in a.params}
    params.update({"v": 77, "len": 1234, "group": 5, "data": 99})
    params = {k: v for k, v in params.items() if k in {p.name for p in a.params}}
    assert enabled(a, st, params)
    apply_action(a, st, params)
    for array, param in ADVERSARY_WRITES[name]:
        assert st[array][params["j"]] == params[param], f"{name} does not write {array}"


def test_the_mainline_queue_claims_only_an_unused_frame_on_an_idle_cpu():
    """nfqnl_build_packet_message (mainline): a packet thread claims the frame at the ring's head
    only if it is UNUSED, and one CPU builds one packet at a time (cpu_busy until queue_send)."""
    from nlmmap.spec.protocol import queue_system

    Q = queue_system(Variant(queue_alloc_outside_lock=True))
    st = initial_states(Q, {"rx_frame_nr": (2,)})[0]
    claim = Q.action("queue_alloc")
    assert enabled(claim, st, {"c": 0})
    apply_action(claim, st, {"c": 0})
    assert not enabled(claim, st, {"c": 0})  # CPU 0 is busy with its packet
    assert enabled(claim, st, {"c": 1})  # another CPU claims the next frame
    apply_action(claim, st, {"c": 1})
    assert not enabled(claim, st, {"c": 2})  # the head is back on CPU 0's frame, RESERVED


def test_the_users_tx_fill_writes_the_message_its_length_and_valid():
    """11.2: the user writes a message and nm_len into the next UNUSED TX frame, then VALID (what
    the kernel's walk then copies: tx_copy reads tx_len and tx_data)."""
    S = socket_system()
    st = initial_states(S, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    apply_action(S.action("set_tx_ring"), st, {"n": 2, "cap": 2024})
    apply_action(S.action("mmap"), st, {})
    apply_action(S.action("fill_tx_frame"), st, {"j": 0, "len": 40, "data": 123})
    assert (st["tx_len"][0], st["tx_data"][0], st["tx_status"][0], st["tx_user_cursor"]) == (40, 123, Status.VALID, 1)
    apply_action(S.action("tx_copy"), st, {})
    assert (st["tx_plen"], st["tx_private"]) == (40, 123)
