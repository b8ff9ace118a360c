"""One test per kernel rule of kernel-protocol.md, on the executable reference model.

Test names carry the fact sheet's section. Every test drives the model through its public,
real-API-shaped calls and checks bytes, statuses, errnos and return values.
"""

import struct

import pytest

from nlmmap.model import Kernel, ModelConfig
from nlmmap.spec import family
from nlmmap.spec.abi import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_NO_ENOBUFS,
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    RingRequest,
    Status,
)
from nlmmap.spec.errors import NetlinkError, errno_code
from nlmmap.spec.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    build_message,
    nlmsg_goodsize,
)
from nlmmap.spec.protocol import Variant

U, R, V, C, S = (int(s) for s in Status)
RX4 = RingRequest(4096, 1, 1024, 4)
TX2 = RingRequest(4096, 1, 2048, 2)
u32 = struct.Struct("=I")


def sock(rx=RX4, tx=TX2, mapped=True, **cfg):
    s = Kernel(ModelConfig(**cfg)).socket()
    if rx is not None:
        s.setsockopt(NETLINK_RX_RING, rx.pack())
    if tx is not None:
        s.setsockopt(NETLINK_TX_RING, tx.pack())
    if mapped:
        s.mmap(s.layout.size)
    return s


def errno_of(call):
    with pytest.raises(NetlinkError) as e:
        call()
    return e.value.errno


def set_status(s, i, v, ring="rx"):
    s.poke(s.layout.frame_offset(ring, i), u32.pack(v))


def fill_tx(s, i, data, nm_len=None):
    off = s.layout.frame_offset("tx", i)
    s.poke(off + 24, data)
    s.poke(off + 4, u32.pack(len(data) if nm_len is None else nm_len))
    s.poke(off, u32.pack(V))


# ---- section 3: setsockopt ------------------------------------------------------------------------
def test_s3_1_3_eperm_without_cap_net_admin():
    s = Kernel(ModelConfig(cap_net_admin=False)).socket()
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, RX4.pack())) == "EPERM"
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, b"")) == "EPERM"  # EPERM comes before EINVAL


def test_s3_1_1_wrong_level_is_enoprotoopt():
    s = Kernel().socket()
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, RX4.pack(), level=1)) == "ENOPROTOOPT"


def test_s3_1_4_short_optlen_before_ebusy():
    s = sock()
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, b"\0" * 8)) == "EINVAL"


def test_s3_1_6_1_ebusy_after_mmap_even_for_teardown():
    s = sock()
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, bytes(16))) == "EBUSY"
    assert errno_of(lambda: s.setsockopt(NETLINK_TX_RING, RingRequest(4096, 1, 4096, 1).pack())) == "EBUSY"
    s.munmap()
    s.setsockopt(NETLINK_RX_RING, bytes(16))  # unmapped again: tear-down works


def test_s3_1_6_3_1_second_create_is_ebusy_same_geometry():
    s = sock(mapped=False)
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, RX4.pack())) == "EBUSY"
    s.setsockopt(NETLINK_RX_RING, bytes(16))
    s.setsockopt(NETLINK_RX_RING, RingRequest(8192, 1, 2048, 4).pack())
    assert s.layout.rx.frame_size == 2048


def test_s3_1_6_2_ebusy_while_frames_in_flight():
    s = sock(mapped=False)
    j = s.ring_alloc(10)  # claimed, not yet published: pending 1
    assert j == 0 and s.spec_state["rx_pending"] == 1
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, bytes(16))) == "EBUSY"
    s.ring_publish(j, b"x" * 10)
    s.setsockopt(NETLINK_RX_RING, bytes(16))


def test_s3_1_6_6_ring_setup_purges_the_receive_queue():
    s = sock(rx=None, tx=None, mapped=False)
    s.deliver(b"a" * 20, "copy")
    assert s.spec_state["rq_len"] == 1
    s.setsockopt(NETLINK_RX_RING, RX4.pack())
    assert errno_of(lambda: s.recvmsg(100)) == "EAGAIN" and s.spec_state["purged"] == 1


def test_s3_1_7_teardown_without_ring_succeeds_and_purges():
    s = sock(rx=None, tx=None, mapped=False)
    s.deliver(b"a" * 20, "copy")
    s.setsockopt(NETLINK_RX_RING, bytes(16))
    assert s.spec_state["rq_len"] == 0 and s.spec_state["purged"] == 1
    assert errno_of(lambda: s.recvmsg(100)) == "EAGAIN"


def test_s3_2_enomem_for_ring_too_large():
    s = Kernel(ModelConfig(memory_limit=1 << 20)).socket()
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 512, 4096, 512).pack())) == "ENOMEM"
    wrapped = RingRequest(4096, 0x80000000, 2048, 0)  # u32 product wraps to frame_nr: allocation fails
    assert errno_of(lambda: Kernel().socket().setsockopt(NETLINK_RX_RING, wrapped.pack())) == "ENOMEM"
    exact = Kernel(ModelConfig(memory_limit=512 * 4096)).socket()  # a ring of exactly the memory there is
    exact.setsockopt(NETLINK_RX_RING, RingRequest(4096, 512, 4096, 512).pack())
    assert exact.spec_state["rx_frame_nr"] == 512


def test_s3_2_fresh_ring_is_all_zero():
    s = sock()
    assert s.peek(0, s.layout.size) == bytes(s.layout.size)


# ---- section 4: mmap ----------------------------------------------------------------------------
def test_s4_mmap_rules_and_mapped_count():
    s = sock(mapped=False)
    assert errno_of(lambda: s.mmap(4096)) == "EINVAL"
    assert errno_of(lambda: s.mmap(8192, 4096)) == "EINVAL"
    s.mmap(8192)
    s.mmap(8192)  # several mappings share the pages
    assert s.spec_state["mapped"] == 2
    assert errno_of(lambda: Kernel().socket().mmap(4096)) == "EINVAL"  # no ring


def test_s4_munmap_of_an_unmapped_socket_is_einval():
    s = sock()
    s.munmap()
    assert errno_of(s.munmap) == "EINVAL" and s.spec_state["mapped"] == 0


def test_s4_ring_survives_munmap():
    s = sock()
    s.deliver(b"z" * 30, "ring")
    s.munmap()
    assert errno_of(lambda: s.peek(0, 4)) == "EFAULT"
    s.mmap(8192)
    assert s.statuses("rx")[0] == V and s.peek(24, 30) == b"z" * 30


# ---- section 6: RX --------------------------------------------------------------------------------
def test_s6_1_alloc_claims_at_cursor_and_advances_head():
    s = sock()
    j = s.ring_alloc(8)
    assert (j, s.statuses("rx")[0], s.spec_state["rx_head"], s.spec_state["rx_pending"]) == (0, R, 1, 1)
    s.ring_publish(j, b"12345678")
    hdr = s.header("rx", 0)
    assert (hdr.status, hdr.len, hdr.group, hdr.pid) == (V, 8, 0, 0) and s.spec_state["rx_pending"] == 0


def test_s6_1_reordering_publish_order_differs_from_ring_order():
    s = sock()
    a, b = s.ring_alloc(4), s.ring_alloc(4)
    s.ring_publish(b, b"BBBB")  # the later allocation is published first
    assert s.statuses("rx")[:2] == [R, V]
    s.ring_publish(a, b"AAAA")
    assert s.peek(24, 4) == b"AAAA"  # ring order is allocation order


def test_s6_1_message_exactly_filling_a_frame_and_one_byte_too_many():
    s = sock()
    assert s.deliver(b"f" * 1000, "ring").outcome == "frame"  # 1024 - 24 = 1000
    d = s.deliver(b"g" * 1001, "ring")
    assert d.outcome == "copy" and s.statuses("rx")[1] == C and s.header("rx", 1).len == 1001
    assert s.recvmsg(4096) == (b"g" * 1001, False)


def test_s6_1_zero_length_ring_message():
    s = sock()
    assert s.deliver(b"", "ring").outcome == "frame" and s.header("rx", 0).len == 0


def test_s6_1_ring_full_loses_message_and_raises_enobufs():
    s = sock()
    for _ in range(4):
        s.deliver(b"m", "ring")
    assert s.deliver(b"lost", "ring").outcome == "dropped"
    assert s.statuses("rx") == [V] * 4 and s.spec_state["drops"] == 1
    assert s.poll() == {"POLLIN", "POLLOUT", "POLLERR"}
    assert errno_of(lambda: s.recvmsg(10)) == "ENOBUFS"
    assert errno_of(lambda: s.recvmsg(10)) == "EAGAIN"  # once only
    set_status(s, 0, U)
    assert s.deliver(b"next", "ring").frame == 0  # lands at the kernel cursor


def test_s6_1_ring_full_loses_a_message_that_exactly_fills_a_frame():
    """netlink_alloc_skb on a full ring: a message of exactly frame_size - 24 bytes is a ring
    message like any that fits (lost with an overrun), not one for the COPY path."""
    s = sock()
    for _ in range(4):
        s.deliver(b"m", "ring")
    assert s.deliver(b"f" * 1000, "ring").outcome == "dropped"
    assert s.statuses("rx") == [V] * 4 and s.spec_state["drops"] == 1 and s.spec_state["rq_len"] == 0
    assert errno_of(lambda: s.recvmsg(4096)) == "ENOBUFS"


def test_s6_1_valid_at_cursor_blocks_even_if_later_frames_unused():
    s = sock()
    for _ in range(2):
        s.deliver(b"m", "ring")
    s.deliver(b"m", "ring")
    s.deliver(b"m", "ring")
    set_status(s, 2, U)
    set_status(s, 3, U)
    assert s.spec_state["rx_head"] == 0 and s.deliver(b"x", "ring").outcome == "dropped"


def test_s6_2_header_fields_and_payload_offset():
    s = sock()
    s.deliver(b"\xaa" * 12, "ring")
    assert s.peek(0, 36) == struct.pack("=6I", V, 12, 0, 0, 0, 0) + b"\xaa" * 12


def test_s6_3_copy_path_frame_and_queue_then_user_releases():
    s = sock()
    assert s.deliver(b"c" * 36, "copy").outcome == "copy"
    hdr = s.header("rx", 0)
    assert (hdr.status, hdr.len, hdr.pid != 0) == (C, 36, True) and s.peek(24, 36) == bytes(36)
    assert s.recvmsg(4096) == (b"c" * 36, False)
    assert s.statuses("rx")[0] == C  # recvmsg never touches a frame
    set_status(s, 0, U)
    assert s.statuses("rx")[0] == U


def test_s6_3_copy_path_does_not_step_over_skip():
    s = sock()
    s.deliver(b"x", "ring")
    set_status(s, 0, S)
    for _ in range(3):
        s.deliver(b"y", "ring")
    for i in (1, 2, 3):
        set_status(s, i, U)
    assert s.spec_state["rx_head"] == 0  # cursor on the SKIP frame
    assert s.deliver(b"copy", "copy").outcome == "dropped" and s.spec_state["rx_head"] == 0 and s.spec_state["sk_err"]
    assert s.deliver(b"ring", "ring").frame == 1  # ring allocation steps over it


def test_s6_5_congestion_eagain_for_user_sender_until_queue_empty():
    s = sock()
    for _ in range(4):
        s.deliver(b"q", "copy")
    assert s.deliver(b"over", "copy").outcome == "dropped"  # ring full: dropped, sender told success
    assert errno_of(lambda: s.deliver(b"again", "copy")) == "EAGAIN"  # congested
    assert s.statuses("rx") == [C] * 4
    assert errno_of(lambda: s.recvmsg(100)) == "ENOBUFS"
    for _ in range(4):
        s.recvmsg(100)
    assert errno_of(lambda: s.recvmsg(100)) == "EAGAIN"
    for i in range(4):
        set_status(s, i, U)
    assert s.deliver(b"ok", "copy").outcome == "copy"


def test_s6_5_no_enobufs_drop_is_silent():
    s = sock()
    s.setsockopt(NETLINK_NO_ENOBUFS, u32.pack(1))
    for _ in range(4):
        s.deliver(b"m", "ring")
    assert s.deliver(b"x", "ring").outcome == "dropped" and s.spec_state["drops"] == 1
    assert "POLLERR" not in s.poll() and errno_of(lambda: s.recvmsg(1)) == "EAGAIN"


def test_s6_5_setting_no_enobufs_clears_congestion():
    s = sock()
    for _ in range(5):
        s.deliver(b"q", "copy")
    assert s.spec_state["congested"]
    s.setsockopt(NETLINK_NO_ENOBUFS, u32.pack(1))
    assert not s.spec_state["congested"]
    s.setsockopt(NETLINK_NO_ENOBUFS, b"")  # optlen < 4 reads 0: clears the flag
    assert not s.spec_state["no_enobufs"]


def test_s6_4_undelivered_ring_skb_is_empty_valid_frame():
    s = sock()
    s.deliver(b"old message", "ring")
    set_status(s, 0, U)
    for _ in range(3):
        s.deliver(b"m", "ring")
    j = s.ring_alloc(20)
    assert j == 0
    s.ring_abort(j)
    hdr = s.header("rx", 0)
    assert (hdr.status, hdr.len) == (V, 0) and s.spec_state["aborted"] == 1


def test_s13_3_multicast_copy_frame_carries_group():
    s = sock()
    assert s.deliver(b"n" * 20, "copy", group=3).outcome == "copy"
    assert s.header("rx", 0).group == 3 and s.recvmsg(100)[0] == b"n" * 20


def test_s13_3_multicast_reaches_members_only():
    """A delivery to a group joins the socket to it the first time (the adapter's deliver); after
    NETLINK_DROP_MEMBERSHIP the group's messages no longer reach the socket, as a real 4.5 kernel
    behind the recording agent shows (recorded: deliver, drop, deliver -> nothing arrives)."""
    s = sock()
    assert s.deliver(b"a" * 8, "copy", group=5).outcome == "copy"
    s.setsockopt(NETLINK_DROP_MEMBERSHIP, u32.pack(5))
    before = s.peek(0, s.layout.size)
    assert s.deliver(b"b" * 8, "copy", group=5).outcome == "dropped"
    assert s.peek(0, s.layout.size) == before and s.spec_state["drops"] == 0 and s.spec_state["rq_len"] == 1
    s.setsockopt(NETLINK_ADD_MEMBERSHIP, u32.pack(5))
    assert s.deliver(b"c" * 8, "copy", group=5).frame == 1
    s.setsockopt(NETLINK_DROP_MEMBERSHIP, u32.pack(6))  # never joined: the first delivery still joins
    assert s.deliver(b"d" * 8, "copy", group=6).frame == 2


def test_s13_3_multicast_reaches_every_member():
    """netlink_broadcast gives every member of the group its own copy (13.3): the peer of A sends to
    group 7, which B joined with NETLINK_ADD_MEMBERSHIP: A (joined by the delivery) and B each get a
    COPY frame with nm_group 7 and a queued message; C (a member without an RX ring) gets it queued;
    D (not a member) nothing. Observed on Linux 4.5 through the real-kernel agent."""
    k = Kernel(ModelConfig())
    a, b, c, d = k.socket(), k.socket(), k.socket(), k.socket()
    for s in (a, b, d):
        s.setsockopt(NETLINK_RX_RING, RX4.pack())
        s.mmap(s.layout.size)
    b.setsockopt(NETLINK_ADD_MEMBERSHIP, u32.pack(7))
    c.setsockopt(NETLINK_ADD_MEMBERSHIP, u32.pack(7))
    assert a.deliver(b"m" * 20, "copy", group=7).outcome == "copy"
    for s in (a, b):
        hdr = s.header("rx", 0)
        assert (hdr.status, hdr.len, hdr.group, hdr.pid) == (C, 20, 7, k.config.peer_pid)
        assert s.recvmsg(100) == (b"m" * 20, False)
    assert c.recvmsg(100) == (b"m" * 20, False)
    assert d.statuses("rx") == [U] * 4 and d.spec_state["rq_len"] == 0
    # a full listener overruns on its own; the addressed socket still gets its copy
    for i in range(4):
        set_status(b, i, V)
    assert a.deliver(b"n" * 8, "copy", group=7).frame == 1
    assert b.spec_state["drops"] == 1 and b.poll() == {"POLLIN", "POLLOUT", "POLLERR"}
    # another group: only its members
    assert b.deliver(b"o" * 8, "copy", group=9).outcome == "dropped"  # b joins 9 but its ring is full
    assert a.statuses("rx")[2] == U


@pytest.mark.parametrize("option", [NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP])
def test_s13_3_family_groups_are_1_to_32(option):
    """netlink_kernel_create gives every family at least 32 groups: 1..32 are NETLINK_ROUTE's on
    4.5 (observed on the real kernel), 0 and 33 are EINVAL; a delivery to group 33 is EINVAL."""
    s = sock()
    for group in (1, 28, 29, 32):
        s.setsockopt(option, u32.pack(group))
    for group in (0, 33, 0xFFFFFFFF):
        assert errno_of(lambda g=group: s.setsockopt(option, u32.pack(g))) == "EINVAL"
    assert errno_of(lambda: s.setsockopt(option, b"\x01")) == "EINVAL"  # optlen < 4 reads 0
    assert s.deliver(b"g" * 8, "copy", group=32).outcome == "copy" and s.header("rx", 0).group == 32
    assert errno_of(lambda: s.deliver(b"g" * 8, "copy", group=33)) == "EINVAL"
    assert s.statuses("rx")[1] == U  # nothing delivered


# ---- section 7: poll ------------------------------------------------------------------------------
def test_s7_poll_masks_4_4():
    s = sock()
    assert s.poll() == {"POLLOUT"}
    s.deliver(b"v", "ring")
    s.deliver(b"v", "ring")
    set_status(s, 0, U)  # the VALID frame is not at head - 1's rule: any VALID frame counts
    assert "POLLIN" in s.poll()
    set_status(s, 1, S)
    assert s.poll() == {"POLLOUT"}


def test_s7_poll_head_minus_one_variant():
    s = sock(variant=Variant(poll_head_minus_one=True))
    s.deliver(b"v", "ring")
    set_status(s, 0, S)  # old rule: head - 1 not UNUSED -> readable (SKIP included)
    assert "POLLIN" in s.poll()
    s4 = sock()
    s4.deliver(b"v", "ring")
    set_status(s4, 0, S)
    assert "POLLIN" not in s4.poll()


def test_s7_pollout_even_with_tx_ring_all_valid():
    s = sock()
    fill_tx(s, 0, b"a" * 20)
    fill_tx(s, 1, b"b" * 20)
    assert "POLLOUT" in s.poll()


# ---- section 8: recvmsg ----------------------------------------------------------------------------
def test_s8_recvmsg_truncates_and_reports():
    s = sock(rx=None, tx=None, mapped=False)
    s.deliver(b"0123456789", "copy")
    assert s.recvmsg(4) == (b"0123", True)


# ---- section 9: SKIP --------------------------------------------------------------------------------
def test_s9_skip_run_covering_the_whole_ring_is_full():
    s = sock()
    for _ in range(4):
        s.deliver(b"m", "ring")
    for i in range(4):
        set_status(s, i, S)
    head = s.spec_state["rx_head"]
    assert s.deliver(b"x", "ring").outcome == "dropped" and s.spec_state["rx_head"] == head


def test_s9_skip_broken_variant_skip_at_head_is_full():
    s = sock(variant=Variant(skip_broken=True))
    for _ in range(4):
        s.deliver(b"m", "ring")
    set_status(s, 0, S)
    set_status(s, 1, U)
    assert s.deliver(b"x", "ring").outcome == "dropped"
    f = sock()
    for _ in range(4):
        f.deliver(b"m", "ring")
    set_status(f, 0, S)
    set_status(f, 1, U)
    assert f.deliver(b"x", "ring").frame == 1


@pytest.mark.parametrize("garbage", [0xDEADBEEF, R, 5, 0xFFFFFFFF])
def test_s1_4_garbage_status_at_cursor_behaves_as_occupied(garbage):
    s = sock()
    set_status(s, 0, garbage)
    assert s.deliver(b"x", "ring").outcome == "dropped" and s.statuses("rx")[0] == garbage
    c = sock()
    set_status(c, 0, garbage)
    assert c.deliver(b"y", "copy").outcome == "dropped" and c.statuses("rx")[0] == garbage


# ---- section 10: dumps --------------------------------------------------------------------------------
DUMP_HDR = struct.pack("=HH", family.DUMP_TYPE, NLM_F_MULTI)  # nlmsg_type and flags of each dump message


def test_s10_dump_in_ring_frames_continued_by_poll():
    rx = RingRequest(16384, 1, 4096, 4)  # frames of 4096: 4072 >= NLMSG_GOODSIZE 3776
    s = sock(rx=rx, tx=None)
    req = family.dump_request(20, 1000, seq=5)
    assert s.sendmsg(req) == len(req)
    assert s.statuses("rx") == [V, U, U, U]  # first batch synchronously
    msgs, cursor = [], 0  # the user reads in ring order
    while s.dump is not None or any(v == V for v in s.statuses("rx")):
        while s.statuses("rx")[cursor] == V:
            msgs.append(s.peek(cursor * 4096 + 24, s.header("rx", cursor).len))
            set_status(s, cursor, U)
            cursor = (cursor + 1) % 4
        s.poll()
    body = b"".join(msgs)
    seqs, types = [], []
    pos = 0
    while pos < len(body):  # the ring's messages back to back: 20 dump messages, then NLMSG_DONE
        ln, typ, _, seq, pid = struct.unpack_from("=IHHII", body, pos)
        types.append(typ)
        seqs.append(seq)
        assert pid == s.portid
        pos += ln
    assert types == [family.DUMP_TYPE] * 20 + [NLMSG_DONE] and set(seqs) == {5}


def test_s10_dump_through_copy_when_frames_too_small():
    s = sock()  # 1024-byte frames < NLMSG_GOODSIZE + 24
    s.sendmsg(family.dump_request(3, 100))
    assert s.statuses("rx")[0] == C
    data, _ = s.recvmsg(8192)
    assert data.count(DUMP_HDR) == 3 and len(data) == 3 * (16 + 100) + 20


def test_s10_dump_offset_bug_variant_moves_data_away_from_frame_start():
    rx = RingRequest(16384, 1, 4096, 4)
    good = sock(rx=rx, tx=None)
    good.sendmsg(family.dump_request(1, 100))
    assert good.peek(24 + 4, 4) == DUMP_HDR
    bad = sock(rx=rx, tx=None, variant=Variant(dump_offset_bug=True))
    bad.sendmsg(family.dump_request(1, 100))
    assert bad.peek(24 + 4, 4) != DUMP_HDR and bad.header("rx", 0).status == V


def test_s10_without_the_dump_service_a_dump_request_is_eopnotsupp():
    """A real 4.5 kernel has no handler for the dump type: an error ACK echoing the request."""
    s = sock(dump_service=False)
    req = family.dump_request(3, 100, seq=7)
    assert s.sendmsg(req) == len(req)
    ack = s.peek(24, s.header("rx", 0).len)
    assert struct.unpack_from("=IHHIIi", ack) == (20 + len(req), NLMSG_ERROR, 0, 7, s.portid, -errno_code("EOPNOTSUPP"))
    assert ack[20:] == req and s.dump is None


def test_s10_with_the_dump_service_a_dump_not_its_own_is_answered_as_by_4_5():
    """The dump service takes only dumps whose payload starts as its requests do (AF_UNSPEC and zero
    padding): a DUMP_TYPE dump of other bytes (a Linux 4.5 recording of seed 90210 held some: the
    kernel answered EOPNOTSUPP, the service EINVAL) gets the error ACK a real kernel gives; one
    of its own with bounds it refuses stays EINVAL, and one of its own starts the dump."""
    def ack_error(payload: bytes) -> int | None:
        s = sock(tx=None)
        req = build_message(family.DUMP_TYPE, NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK, 7, 0, payload)
        s.sendmsg(req)
        head = s.peek(24, 24)
        return struct.unpack_from("=i", head, 16)[0] if struct.unpack_from("=H", head, 4)[0] == NLMSG_ERROR else None

    count_size = struct.pack("=II", 2, 100)
    assert ack_error(bytes.fromhex("e348ad12") + count_size) == -errno_code("EOPNOTSUPP")
    assert ack_error(b"\0\0\0\1" + count_size) == -errno_code("EOPNOTSUPP")  # a pad byte set
    assert ack_error(b"\x07") == -errno_code("EOPNOTSUPP")
    assert ack_error(bytes(4) + struct.pack("=II", family.DUMP_MAX_MESSAGES + 1, 8)) == -errno_code("EINVAL")
    assert ack_error(bytes(2)) == -errno_code("EINVAL")  # its own, cut short
    assert ack_error(bytes(4) + count_size) is None  # the dump's first message


def test_s10_dump_request_limits_and_a_second_dump_while_one_runs():
    rx = RingRequest(16384, 1, 4096, 4)
    s = sock(rx=rx, tx=None)
    too_big = family.dump_request(1, 4000)  # one message and NLMSG_DONE must fit NLMSG_GOODSIZE
    s.sendmsg(too_big)
    assert struct.unpack_from("=i", s.peek(24 + 16, 4))[0] == -errno_code("EINVAL") and s.dump is None
    set_status(s, 0, U)
    s.sendmsg(family.dump_request(40, 1000))  # 3 messages per skb: the dump keeps running
    assert s.dump is not None
    s.sendmsg(family.dump_request(1, 10, seq=9))
    err = [s.peek(i * 4096 + 24, 48) for i in range(4) if s.statuses("rx")[i] == V and
           struct.unpack_from("=H", s.peek(i * 4096 + 24 + 4, 2))[0] == NLMSG_ERROR]
    assert [struct.unpack_from("=i", e, 16)[0] for e in err] == [-errno_code("EBUSY")]



def test_s10_the_largest_dump_message_with_its_done_fits_one_goodsize_skb():
    """The bound is exact: a message whose aligned payload is NLMSG_GOODSIZE - 36 (with its header
    and NLMSG_DONE's 20 bytes: 3776 on 4 KiB pages) is served; 1 byte more, or one message more
    than DUMP_MAX_MESSAGES, is EINVAL."""
    limit = nlmsg_goodsize(4096) - 36
    assert family.parse_dump_request(family.dump_request(1, limit)) == (1, limit)
    assert family.parse_dump_request(family.dump_request(family.DUMP_MAX_MESSAGES, 8)) == (family.DUMP_MAX_MESSAGES, 8)
    for bad in (family.dump_request(1, limit + 1), family.dump_request(family.DUMP_MAX_MESSAGES + 1, 8)):
        with pytest.raises(NetlinkError) as e:
            family.parse_dump_request(bad)
        assert e.value.errno == "EINVAL"
    s = sock(rx=RingRequest(16384, 1, 4096, 4), tx=None)
    s.sendmsg(family.dump_request(1, limit))
    assert s.dump is None and s.statuses("rx")[:1] == [V]  # one skb: the message and NLMSG_DONE



def test_s10_netlink_dump_tries_max_recvmsg_len_only_when_it_exceeds_goodsize():
    """netlink_dump (4.5 af_netlink.c): ``if (alloc_min_size < nlk->max_recvmsg_len)`` a first
    attempt of max_recvmsg_len, then NLMSG_GOODSIZE; at equality one attempt only (a second
    attempt of the same size would count a second overrun on a full ring)."""
    good = nlmsg_goodsize(4096)
    assert family.dump_alloc_sizes(good, 4096) == [good]
    assert family.dump_alloc_sizes(good - 1, 4096) == [good]
    assert family.dump_alloc_sizes(good + 1, 4096) == [good + 1, good]


def test_s10_a_dump_skb_takes_messages_that_fill_it_exactly():
    """A message that fits the skb's room exactly is taken (nlmsg_put fails only when the tailroom
    is smaller than the message); NLMSG_DONE follows only when it fits as well."""
    msgs = [b"a" * 40, b"b" * 60]
    assert family.dump_batch(msgs, 100, b"d" * 20) == (b"a" * 40 + b"b" * 60, 2, False)
    assert family.dump_batch(msgs, 120, b"d" * 20) == (b"a" * 40 + b"b" * 60 + b"d" * 20, 2, True)
    assert family.dump_batch(msgs, 99, b"d" * 20) == (b"a" * 40, 1, False)

# ---- section 11: TX -------------------------------------------------------------------------------------
def test_s11_2_tx_kick_returns_bytes_and_releases_frames_across_wrap():
    s = sock()
    fill_tx(s, 0, b"a" * 32)
    assert s.sendmsg(None, "peer") == 32 and s.statuses("tx") == [U, U]
    fill_tx(s, 1, b"b" * 20)
    fill_tx(s, 0, b"c" * 24)
    assert s.sendmsg(None, "peer") == 44 and s.received() == [b"a" * 32, b"b" * 20, b"c" * 24]
    assert s.sendmsg(None, "peer") == 0


def test_s11_2_oversize_nm_len_is_einval_frame_stays_valid():
    s = sock()
    fill_tx(s, 0, b"x" * 8, nm_len=2025)
    assert errno_of(lambda: s.sendmsg(None)) == "EINVAL"
    assert s.statuses("tx")[0] == V and s.spec_state["tx_head"] == 0
    assert errno_of(lambda: s.sendmsg(None)) == "EINVAL"  # blocks the ring until rewritten
    set_status(s, 0, U, "tx")
    assert s.sendmsg(None) == 0


def test_s11_2_nm_len_of_exactly_the_frame_room_is_sent():
    """netlink_mmap_sendmsg: EINVAL only for nm_len > frame_size - NL_MMAP_HDRLEN; a message that
    fills its frame to the last byte (2024 of a 2048-byte frame) is sent and its frame released."""
    s = sock()
    fill_tx(s, 0, b"f" * 2024)
    assert s.sendmsg(None, "peer") == 2024
    assert s.statuses("tx") == [U, U] and s.received() == [b"f" * 2024]


def test_s11_3_zero_copy_claims_a_frame_filled_to_the_last_byte():
    """3.10's zero-copy path has the same bound: a 2024-byte request in a 2048-byte frame, to the
    kernel from the one mapping, is built over the frame (RESERVED while the family holds it)."""
    s = sock(variant=Variant(tx_zero_copy=True))
    fill_tx(s, 0, build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 7, 0, b"p" * (2024 - 16)))
    steps = s.sendmsg_steps(None, "kernel", pause_after_validate=True)
    next(steps)
    assert s.statuses("tx")[0] == R
    for _ in steps:
        pass
    assert s.statuses("tx")[0] == U and s.header("rx", 0).len == 36  # the ACK of seq 7


def test_s11_2_error_discards_count_of_earlier_frames():
    s = sock()
    fill_tx(s, 0, b"a" * 8)
    fill_tx(s, 1, b"b" * 8, nm_len=5000)
    assert errno_of(lambda: s.sendmsg(None, "peer")) == "EINVAL"
    assert s.statuses("tx") == [U, V] and s.received() == [b"a" * 8]


def test_s11_2_zero_length_and_non_valid_statuses_end_walk():
    s = sock()
    fill_tx(s, 0, b"")
    assert s.sendmsg(None, "peer") == 0 and s.received() == [b""]
    for garbage in (R, C, S, 77):
        set_status(s, 1, garbage, "tx")
        assert s.sendmsg(None) == 0


def test_s11_1_no_tx_ring_null_send_is_zero_byte_message():
    s = sock(tx=None)
    assert s.sendmsg(None, "peer") == 0 and s.received() == [b""]


def test_s11_1_emsgsize_for_plain_send_over_sndbuf():
    s = sock(sndbuf=1000)
    assert errno_of(lambda: s.sendmsg(b"x" * 969)) == "EMSGSIZE"


def test_s12_1_copy_then_validate_ignores_writes_after_validation():
    s = sock()
    fill_tx(s, 0, b"GOOD" * 4)
    steps = s.sendmsg_steps(None, "peer", pause_after_validate=True)
    assert next(steps) == "validated"
    s.poke(s.layout.frame_offset("tx", 0) + 24, b"EVIL" * 4)  # the user rewrites the frame
    for _ in steps:
        pass
    assert s.received() == [b"GOOD" * 4]


def test_s12_1_zero_copy_variant_acts_on_rewritten_bytes():
    """3.10 builds the skb over the frame for the kernel as destination when the one mapping is the
    only one and the file is not shared; a thread writing through that mapping after validation
    changes what the family acts on (its ACK echoes the rewritten header)."""
    s = sock(variant=Variant(tx_zero_copy=True))
    good, evil = (build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, seq, 0) for seq in (1, 2))
    fill_tx(s, 0, good)
    steps = s.sendmsg_steps(None, "kernel", pause_after_validate=True)
    next(steps)
    assert s.statuses("tx")[0] == R  # zero-copy: the frame is the skb
    s.poke(s.layout.frame_offset("tx", 0) + 24, evil)
    for _ in steps:
        pass
    assert s.statuses("tx")[0] == U and s.header("rx", 0).len == 36
    assert struct.unpack_from("=I", s.peek(24 + 8, 4))[0] == 2  # the ACK answers the rewritten request
    assert "TxActsOnValidated" in {p for p, _, _ in s.violations}  # the model records the historical flaw


def test_s12_1_zero_copy_only_when_exclusive():
    """The 3.10 eligibility test: a second mapping (or a peer destination) means a copy."""
    s = sock(variant=Variant(tx_zero_copy=True))
    s.mmap(s.layout.size)  # two mappings: mapped > 1
    fill_tx(s, 0, build_message(0x1, NLM_F_REQUEST, 1, 0))
    steps = s.sendmsg_steps(None, "kernel", pause_after_validate=True)
    next(steps)
    assert s.statuses("tx")[0] == U  # copied and released, not RESERVED
    for _ in steps:
        pass
    assert not s.violations


# ---- section 20: ACKs ---------------------------------------------------------------------------------
def test_s20_ack_in_ring_36_bytes_not_queued():
    s = sock()
    req = build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 0x1001, 0)
    assert s.sendmsg(req) == 16
    assert s.peek(0, 24) == struct.pack("=6I", V, 36, 0, 0, 0, 0)
    assert s.peek(24, 36) == struct.pack("=IHHIIi", 36, 2, 0, 0x1001, s.portid, 0) + req
    assert errno_of(lambda: s.recvmsg(100)) == "EAGAIN"


def test_s20_error_ack_echoes_request_and_cap_ack():
    s = sock()
    req = build_message(0x100, NLM_F_REQUEST, 3, 0, b"abcd")
    s.sendmsg(req)
    assert s.header("rx", 0).len == 40 and s.peek(24 + 20, 20) == req
    s.setsockopt(NETLINK_CAP_ACK, u32.pack(1))
    s.sendmsg(req)
    assert s.header("rx", 1).len == 36


def test_s20_several_requests_fill_consecutive_frames_and_stop_at_malformed():
    s = sock()
    reqs = b"".join(build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, q, 0) for q in (1, 2))
    bad = struct.pack("=IHHII", 8, 1, 5, 3, 0)
    s.sendmsg(reqs + bad + build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 4, 0))
    assert s.statuses("rx") == [V, V, U, U]


def test_s20_ack_too_big_for_frame_goes_copy():
    s = sock(rx=RingRequest(4096, 1, 48, 85))  # 48 - 24 = 24 < 36
    s.sendmsg(build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 1, 0))
    assert s.statuses("rx")[0] == C and s.header("rx", 0).pid == 0 and len(s.recvmsg(100)[0]) == 36


def test_s20_lost_ack_raises_enobufs_even_with_no_enobufs():
    s = sock()
    s.setsockopt(NETLINK_NO_ENOBUFS, u32.pack(1))
    for _ in range(4):
        s.deliver(b"m", "ring")
    assert s.sendmsg(build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 1, 0)) == 16
    assert "POLLERR" in s.poll() and errno_of(lambda: s.recvmsg(10)) == "ENOBUFS"


def test_s20_tx_request_answered_inside_the_kick():
    s = sock()
    fill_tx(s, 0, build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 2, 0))
    assert s.sendmsg(None) == 16 and s.statuses("tx")[0] == U and s.statuses("rx")[0] == V


# ---- shared memory is hostile --------------------------------------------------------------------------
def test_user_writes_to_reserved_frame_do_not_stop_the_kernel():
    s = sock()
    j = s.ring_alloc(8)
    set_status(s, j, 0xABCD)  # the user scribbles on a frame the kernel holds
    s.poke(24, b"\xff" * 8)
    s.ring_publish(j, b"kernel!!")  # the kernel still owns it and publishes
    assert s.header("rx", 0).status == V and s.peek(24, 8) == b"kernel!!"


def test_peek_poke_outside_mapping_is_efault():
    s = sock()
    assert errno_of(lambda: s.peek(8190, 4)) == "EFAULT"
    assert errno_of(lambda: s.poke(8192, b"x")) == "EFAULT"
    assert errno_of(lambda: s.poke(-1, b"x")) == "EINVAL"


# ---- sections 1.7, 11.1, 13.1, 13.4 --------------------------------------------------------------
def test_s1_7_kernel_without_the_feature():
    s = Kernel(ModelConfig(netlink_mmap=False)).socket()
    assert errno_of(lambda: s.setsockopt(NETLINK_RX_RING, RX4.pack())) == "ENOPROTOOPT"
    assert errno_of(lambda: s.mmap(4096)) == "ENODEV"
    assert s.sendmsg(None, "peer") == 0 and s.received() == [b""]


def test_s11_1_msg_oob_is_eopnotsupp():
    s = sock()
    assert errno_of(lambda: s.sendmsg(None, flags=0x1)) == "EOPNOTSUPP"


def test_s13_1_sock_diag_ring_report():
    s = Kernel().socket()
    assert s.diag_rings() == {"rx": (0, 0, 0, 1), "tx": (0, 0, 0, 1)}
    s.setsockopt(NETLINK_RX_RING, RX4.pack())
    assert s.diag_rings()["rx"] == (4096, 1, 1024, 4)
    s.setsockopt(NETLINK_RX_RING, RingRequest(5000, 0, 77, 0).pack())  # tear-down with arbitrary sizes
    assert s.diag_rings()["rx"] == (4096, 0, 77, 0)


def test_s13_4_tx_only_socket_receives_acks_through_the_queue():
    s = sock(rx=None)
    assert s.layout.tx_base == 0
    s.sendmsg(build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 1, 0))
    assert len(s.recvmsg(100)[0]) == 36


def test_s13_2_credentials_kernel_zero_user_sender_nonzero():
    s = sock()
    s.deliver(b"k" * 8, "ring")
    s.deliver(b"u" * 8, "copy")
    assert s.header("rx", 0).pid == 0 and s.header("rx", 1).pid != 0


# ---- sections 2.3, 8, 10, 13.5 ------------------------------------------------------------------------
def test_s2_3_forward_ring_stops_at_first_non_skip_and_wraps():
    s = sock()
    for _ in range(4):
        s.deliver(b"m", "ring")
    set_status(s, 0, S)
    set_status(s, 1, S)
    set_status(s, 2, U)
    assert s.deliver(b"x", "ring").frame == 2 and s.spec_state["rx_head"] == 3  # stepped over 0 and 1
    assert s.statuses("rx")[:2] == [S, S]  # skipped frames stay SKIP behind the head


def test_s8_large_recvmsg_buffer_makes_dumps_try_bigger_allocations():
    rx = RingRequest(16384, 1, 4096, 4)  # 4072-byte frames: NLMSG_GOODSIZE (3776) fits
    s = sock(rx=rx, tx=None)
    s.deliver(b"q", "copy")
    s.recvmsg(16384)  # max_recvmsg_len = 16384 > frame payload: the first try is a plain skb
    set_status(s, 0, U)
    s.sendmsg(family.dump_request(2, 100))
    assert s.statuses("rx") == [U, C, U, U]  # the COPY frame at the cursor (after the first message)
    plain = sock(rx=rx, tx=None)
    plain.sendmsg(family.dump_request(2, 100))
    assert plain.statuses("rx") == [V, U, U, U]  # without the large recvmsg: a ring frame


def test_s8_recvmsg_continues_a_dump_before_rcv_wake():
    """netlink_recvmsg: dequeue, netlink_dump, and only then netlink_rcv_wake (8). With one
    4096-byte frame and max_recvmsg_len 4096 every dump skb is plain (COPY); a recvmsg that
    continues the dump while the frame is still COPY overruns. Found by the conformance suite
    against the implementation (the model woke before the dump)."""
    s = sock(rx=RingRequest(4096, 1, 4096, 1), tx=None)
    s.deliver(b"q" * 16, "copy")
    s.recvmsg(4096)
    set_status(s, 0, U)
    s.sendmsg(family.dump_request(2000, 0))  # 256 messages per skb
    assert s.statuses("rx") == [C] and s.spec_state["rq_len"] == 1
    s.recvmsg(4096)  # the dump's next skb meets the COPY frame: overrun; then the queue is empty: wake
    g = s.spec_state
    assert (g["sk_err"], g["congested"], g["drops"], g["rq_len"]) == (True, False, 1, 0)
    assert errno_of(lambda: s.recvmsg(4096)) == "ENOBUFS"
    set_status(s, 0, U)
    s.poll()  # the dump goes on into the frame
    assert s.statuses("rx") == [C] and s.spec_state["rq_len"] == 1
    s.deliver(b"p" * 16, "copy")  # frame busy: the peer's message overruns, CONGESTED
    assert errno_of(lambda: s.recvmsg(4096)) == "ENOBUFS"
    assert (g["congested"], g["rq_len"]) == (True, 1)
    s.recvmsg(4096)  # congested: the dump's overrun raises no sk_err; the empty queue then wakes it
    assert (g["sk_err"], g["congested"], g["drops"], g["rq_len"]) == (False, False, 3, 0)


def test_s10_dump_continues_only_with_half_the_ring_free():
    rx = RingRequest(16384, 2, 4096, 8)
    s = sock(rx=rx, tx=None)  # 40 messages of 1000 bytes: 3 per skb
    s.sendmsg(family.dump_request(40, 1000))
    assert s.statuses("rx").count(V) == 1
    s.poll()  # head frame UNUSED and frame head + frame_max div 2 UNUSED: continue until not
    batch = s.statuses("rx").count(V)
    assert batch >= 2 and s.dump is not None
    s.poll()
    assert s.statuses("rx").count(V) == batch  # no space: no progress until the user frees frames


def test_s13_5_closed_socket_is_gone():
    s = sock()
    s.close()
    assert errno_of(lambda: s.poll()) == "EBADF"
    assert errno_of(lambda: s.sendmsg(b"x")) == "EBADF"
