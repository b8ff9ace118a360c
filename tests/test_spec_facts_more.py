"""Kernel facts of the spec that neither the proofs nor the byte-level model pin down, checked on the
spec's own interpreter (as tests/test_spec_rules.py does): a one-token change to any of them kept
every other test green (a mutation sweep of nlmmap.spec). Each test names the fact it guards and the
section of kernel-protocol.md it comes from; every expected value is the kernel's, not the spec's."""

from __future__ import annotations

import pytest

from nlmmap.spec import abi, family, netlink
from nlmmap.spec.abi import RingGeometry, RingRequest, Status, check_ring_geometry
from nlmmap.spec.errors import NetlinkError, errno_code, errno_name
from nlmmap.spec.explore import initial_states
from nlmmap.spec.expr import evaluate
from nlmmap.spec.protocol import socket_system, system_by_name
from nlmmap.spec.system import apply_action, enabled

S = socket_system()
U32 = 1 << 32


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


def _step(st, name, **params):
    a = S.action(name)
    assert enabled(a, st, params), f"{name}{params} is not enabled"
    apply_action(a, st, params)


# --- ABI values at their edges (sections 1.3, 2.2, 2.4, 3.1, 3.2, 4) ---------------------------------
def test_s1_3_every_u32_is_a_header_value_and_a_fresh_header_is_all_zero():
    """nl_mmap_hdr's fields are u32: 0xFFFFFFFF is a status the user may write (any u32 is possible,
    1.4) and packs as four 0xFF bytes; a fresh ring is all zero bytes, so the default header is the
    one 24 zero bytes decode to (3.2)."""
    from nlmmap.spec.abi import FrameHeader

    top = FrameHeader(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    assert top.pack() == b"\xff" * 24 and FrameHeader.unpack(b"\xff" * 24) == top
    assert FrameHeader() == FrameHeader.unpack(b"\0" * 24) and FrameHeader().pack() == b"\0" * 24
    with pytest.raises(NetlinkError) as e:  # 24 bytes are needed at the offset, not in the buffer
        FrameHeader.unpack(b"\0" * 30, 10)
    assert e.value.errno == "EINVAL"


def test_s3_1_6_3_2_only_a_block_size_with_the_top_bit_set_is_refused():
    """netlink_set_ring refuses ``(int)nm_block_size <= 0``: 2^31 - PAGE_SIZE and 2^30 are positive
    ints and are taken (with frames that fill them), 2^31 is not."""
    for block_size in (1 << 30, (1 << 31) - 4096):
        req = RingRequest(block_size, 1, 4096, block_size // 4096)
        assert check_ring_geometry(req) == req
    with pytest.raises(NetlinkError) as e:
        check_ring_geometry(RingRequest(1 << 31, 1, 4096, 1 << 19))
    assert e.value.errno == "EINVAL"


def test_s2_4_every_frame_of_the_mapping_at_its_block_slot_offset():
    """One mmap() holds the RX ring at offset 0, then the TX ring; frame i of a ring lies at
    ``base + (i div fpb) * block_size + (i mod fpb) * frame_size`` (2.2, 2.4). Offsets 0 and
    tx_base are the first byte of frame 0 of their ring."""
    rx, tx = RingGeometry(8192, 2, 3000, 4), RingGeometry(4096, 2, 2048, 4)  # RX: 2 frames per block
    lay = abi.mapping_layout(rx, tx)
    want = [("rx", 0, 0), ("rx", 1, 3000), ("rx", 2, 8192), ("rx", 3, 11192),
            ("tx", 0, 16384), ("tx", 1, 18432), ("tx", 2, 20480), ("tx", 3, 22528)]
    assert [(f.ring, f.index, f.offset) for f in lay.frames()] == want
    for ring, index, offset in want:
        got = lay.locate(offset)
        assert (got.ring, got.index, got.offset) == (ring, index, offset)
    assert lay.locate(6000) is None and lay.locate(16383) is None  # the slack at an RX block's end


def test_s4_mmap_offset_defaults_to_zero():
    """mmap of the whole mapping at offset 0 (vm_pgoff 0) is what every user does: no offset given
    means offset 0, accepted; rx-only at its exact length too."""
    lay = abi.mapping_layout(RingGeometry(4096, 1, 1024, 4), None)
    abi.check_mmap_request(lay, 4096)
    abi.check_mmap_request(lay, 1)  # rounded up to one page


@pytest.mark.parametrize(("option", "errno"), [(-1, "ENOPROTOOPT"), (0x80000000, "ENOPROTOOPT"), (True, "EINVAL")])
def test_s1_1_socket_option_numbers_are_c_ints(option, errno):
    """setsockopt's optname is a C int: 0..INT_MAX are option numbers (the unknown ones fail later
    with ENOPROTOOPT), a negative or larger number is no option (ENOPROTOOPT); a bool is no
    option number at all (EINVAL)."""
    assert abi.socket_option(0x7FFFFFFF) == 0x7FFFFFFF and abi.socket_option(0) == 0
    with pytest.raises(NetlinkError) as e:
        abi.socket_option(option)
    assert e.value.errno == errno


# --- netlink message constants and limits (sections 8, 10, 12.2, 20) --------------------------------
def test_s20_control_message_types_are_the_fact_sheets(shared):
    """Section 20 names the control types below NLMSG_MIN_TYPE 0x10: NLMSG_NOOP 1, NLMSG_ERROR 2,
    NLMSG_DONE 3, NLMSG_OVERRUN 4 (read from the sheet)."""
    import re

    text = shared("reference", "kernel-protocol.md").read_text()
    sec = text[text.index("## 20. "):]
    found = dict(re.findall(r"(NLMSG_[A-Z]+) (\d+)\b", sec))
    assert {n: int(found[n]) for n in ("NLMSG_NOOP", "NLMSG_ERROR", "NLMSG_DONE", "NLMSG_OVERRUN")} == {
        n: getattr(netlink, n) for n in ("NLMSG_NOOP", "NLMSG_ERROR", "NLMSG_DONE", "NLMSG_OVERRUN")}
    assert "below 0x10" in sec and netlink.NLMSG_MIN_TYPE == 0x10


def test_nlmsghdr_flag_bits_are_the_uapi_values():
    """include/uapi/linux/netlink.h: NLM_F_REQUEST 1, NLM_F_MULTI 2, NLM_F_ACK 4, NLM_F_ECHO 8,
    NLM_F_ROOT 0x100, NLM_F_MATCH 0x200, NLM_F_DUMP = ROOT | MATCH (0x300). A dump's messages carry
    NLM_F_MULTI (section 10), its request NLM_F_DUMP; a plain GET of the dump type is no dump."""
    assert (netlink.NLM_F_REQUEST, netlink.NLM_F_MULTI, netlink.NLM_F_ACK, netlink.NLM_F_ECHO) == (1, 2, 4, 8)
    assert (netlink.NLM_F_ROOT, netlink.NLM_F_MATCH, netlink.NLM_F_DUMP) == (0x100, 0x200, 0x300)
    hdr = netlink.NlMsgHdr.unpack(family.dump_request(1, 4))
    assert hdr.flags == 0x301
    assert netlink.NlMsgHdr.unpack(family.dump_messages(hdr, 5, 1, 4)[0]).flags == 0x2
    assert netlink.NlMsgHdr.unpack(family.dump_done(0, 5)).flags == 0x2
    get = netlink.NlMsgHdr.unpack(netlink.build_message(family.DUMP_TYPE, 0x1, 0, 0, b"\0" * 12))
    assert netlink.route_family_answer(get, dump_types=frozenset({family.DUMP_TYPE})) == netlink.Reply(-95, True)
    dump = netlink.route_family_answer(hdr, dump_types=frozenset({family.DUMP_TYPE}))
    assert dump == netlink.Reply(0, False, dump=True)


def test_nlmsghdr_type_and_flags_take_every_u16():
    """nlmsg_type and nlmsg_flags are u16: 0xFFFF is a value a sender may put there."""
    hdr = netlink.NlMsgHdr(16, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    assert netlink.NlMsgHdr.unpack(hdr.pack()) == hdr


def test_s20_rtm_max_is_91_on_4_5():
    """RTM_MAX on 4.5 is 91 (RTM_GETNSID 90 is the last type: __RTM_MAX 91, rounded up to a group of
    four, less one): type 91 reaches rtnetlink's checks (EPERM for an unprivileged NEW/DEL/SET
    kind), type 92 is refused with EOPNOTSUPP before any."""
    def answer(type_: int) -> tuple[int, bool]:
        hdr = netlink.NlMsgHdr.unpack(netlink.build_message(type_, netlink.NLM_F_REQUEST, 0, 0, b"\0" * 4))
        r = netlink.route_family_answer(hdr, cap_net_admin=False)
        return r.error, r.ack

    assert answer(91) == (-errno_code("EPERM"), True)
    assert answer(92) == (-errno_code("EOPNOTSUPP"), True)


def test_s20_an_ack_carries_error_0_unless_told_otherwise():
    """netlink_ack of a request that succeeded: NLMSG_ERROR with error 0 (an s32 at offset 16)."""
    import struct

    ack = netlink.build_ack(netlink.build_message(0x1, netlink.NLM_F_ACK, 3, 0), 9)
    assert struct.unpack_from("=i", ack, 16)[0] == 0


def test_s8_s10_size_limits_on_x86_64_with_4k_pages():
    """NLMSG_GOODSIZE is 3776 with 4 KiB pages (4096 - 320, the aligned skb_shared_info) and
    max_recvmsg_len is capped at 32448 = 32768 - 320 (sections 8, 10)."""
    assert netlink.nlmsg_goodsize() == 3776 == netlink.nlmsg_goodsize(4096)
    assert family.recvmsg_len_after(0, 1 << 20) == 32448 == netlink.MAX_RECVMSG_LEN


def test_s12_2_nfqueue_wire_constants_are_the_uapi_values():
    """include/uapi/linux/netfilter/nfnetlink_queue.h: NFQNL_MSG_PACKET 0, _VERDICT 1, _CONFIG 2,
    _VERDICT_BATCH 3; NFQA_PACKET_HDR 1, NFQA_VERDICT_HDR 2, NFQA_PAYLOAD 10; nfnetlink.h:
    NFNL_SUBSYS_QUEUE 3; netfilter.h: NF_DROP 0, NF_ACCEPT 1."""
    assert (netlink.NFQNL_MSG_PACKET, netlink.NFQNL_MSG_VERDICT, netlink.NFQNL_MSG_CONFIG,
            netlink.NFQNL_MSG_VERDICT_BATCH) == (0, 1, 2, 3)
    assert (netlink.NFQA_PACKET_HDR, netlink.NFQA_VERDICT_HDR, netlink.NFQA_PAYLOAD) == (1, 2, 10)
    assert (netlink.NFNL_SUBSYS_QUEUE, netlink.NF_DROP, netlink.NF_ACCEPT) == (3, 0, 1)
    import struct

    batch = netlink.build_queue_verdict(7, batch=True)
    assert struct.unpack_from("=H", batch, 4)[0] == 0x0303


@pytest.mark.parametrize(("a", "b", "after"), [
    (1, 0, True), (0, 1, False), (5, 5, False), (0, 0xFFFFFFFF, True), (0xFFFFFFFF, 0, False),
    (0x7FFFFFFF, 0, True), (0x80000000, 0, False), (2, 0xFFFFFFFE, True),
])
def test_s12_2_serial_number_comparison(a, b, after):
    """nfqueue compares ids as ``(int32)(a - b) > 0`` (section 12.2): the id after 0xFFFFFFFF is 0,
    and an id up to 2^31 - 1 ahead is after, 2^31 ahead is not."""
    assert netlink.serial_after(a, b) is after


# --- the spec's actions: parameter ranges (sections 1.3, 2.1, 6.2) ----------------------------------
def _range(action: str, param: str, st) -> tuple[int, int | None]:
    from nlmmap.spec.expr import evaluate

    p = next(p for p in S.action(action).params if p.name == param)
    return evaluate(p.lo, st.__getitem__), None if p.hi is None else evaluate(p.hi, st.__getitem__)


#: Every action that names a frame of a ring by its index, and the ring.
FRAME_ACTIONS = [("alloc", "rx"), ("alloc_full", "rx"), ("publish", "rx"), ("abort", "rx"), ("release_frame", "rx"),
                 ("skip_frame", "rx"), ("write_status", "rx"), ("write_rx_header", "rx"), ("fill_tx_frame", "tx"),
                 ("write_tx", "tx")]


@pytest.mark.parametrize(("action", "ring"), FRAME_ACTIONS)
def test_s2_1_a_frame_index_names_one_of_the_rings_frames(action, ring):
    """Frames are 0 .. frame_max = frame_nr - 1 (2.1): a frame index below 0 or at frame_nr names
    no frame, for the kernel's actions and the user's writes alike."""
    st = _socket(rx=3, tx=5)
    assert _range(action, "j", st) == (0, 3 if ring == "rx" else 5)


#: Every action parameter that is a u32 word the user (or the kernel) writes into a frame header.
U32_WORDS = [("write_status", "v"), ("write_rx_header", "len"), ("write_rx_header", "group"), ("write_tx", "v"),
             ("write_tx", "len"), ("fill_tx_frame", "len"), ("copy_claim", "len"), ("copy_claim", "group")]


@pytest.mark.parametrize(("action", "param"), U32_WORDS)
def test_s1_3_header_words_take_every_u32(action, param):
    """nm_status, nm_len and nm_group are u32 (1.3): the adversary (any thread of the user) writes any
    of 0 .. 2^32 - 1, and nothing else fits the word."""
    assert _range(action, param, _socket()) == (0, U32)


def test_s6_2_a_published_ring_message_fits_its_frame():
    """netlink_queue_mmaped_skb writes nm_len = the message's length, and a ring message is only
    built when it fits the frame (6.1): 0 .. frame_size - 24 bytes."""
    assert _range("publish", "len", _socket()) == (0, 1000 + 1)
    assert _range("recvmsg", "j", _socket(rx=3)) == (-1, 3)  # a COPY frame, or -1: none


@pytest.mark.parametrize("action", ["set_rx_ring", "set_tx_ring"])
def test_s3_1_a_created_ring_has_a_frame(action):
    """A create has nm_block_nr >= 1 and at least one frame per block (3.1 step 6.3.6); block_nr 0 is
    a tear-down, not a ring of no frames."""
    assert _range(action, "n", _socket(rx=0, tx=0, mapped=False)) == (1, None)


def test_s13_2_a_ring_frames_credentials_are_written_at_delivery():
    """netlink_alloc_skb claims the frame (RESERVED) without a header; netlink_queue_mmaped_skb writes
    nm_len, nm_group and the credentials, then VALID (6.1, 6.2, 13.2)."""
    st = _socket()
    _step(st, "alloc", j=0, size=8)
    assert (st["rx_status"][0], st["rx_cred"][0]) == (Status.RESERVED, False)
    _step(st, "publish", j=0, len=8)
    assert (st["rx_status"][0], st["rx_cred"][0], st["rx_len"][0], st["rx_group"][0]) == (Status.VALID, True, 8, 0)


def test_s11_2_the_tx_outcomes_are_named_in_traces():
    """tx_outcome's values print by name in counterexamples and traces: none, drained (sendmsg
    returned >= 0), EINVAL (11.2)."""
    from nlmmap.spec.protocol.names import TX_DRAINED, TX_EINVAL, TX_NO_OUTCOME

    values = next(v.values for v in S.state if v.name == "tx_outcome")
    assert {values[TX_NO_OUTCOME], values[TX_DRAINED], values[TX_EINVAL]} == {"none", "drained", "EINVAL"}
    assert values[TX_EINVAL] == "EINVAL"


# --- ENOBUFS and congestion (sections 6.5, 7, 8, 20) --------------------------------------------------
def test_s20_each_lost_ack_raises_one_enobufs_and_recvmsg_reports_it_once():
    """netlink_ack that cannot allocate its reply sets sk_err = ENOBUFS (whatever NETLINK_NO_ENOBUFS
    says), once per lost ACK; recvmsg returns it once and clears it (20, 8)."""
    st = _socket()
    _step(st, "set_no_enobufs", on=True)
    _step(st, "ack_alloc_failed")
    assert (st["sk_err"], st["enobufs_raised"], st["ack_enobufs"]) == (True, 1, True)
    _step(st, "ack_alloc_failed")
    assert st["enobufs_raised"] == 2
    _step(st, "recvmsg_error")
    assert (st["sk_err"], st["enobufs_reported"], st["enobufs_told"], st["ack_enobufs"]) == (False, 1, True, False)
    assert not enabled(S.action("recvmsg_error"), st, {})


def _poll(st):
    a = S.action("poll")
    params = a.choose(st)
    _step(st, "poll", **params)
    return params


def test_s7_poll_clears_congestion_only_with_an_rx_ring_and_an_empty_queue():
    """netlink_poll runs netlink_rcv_wake only on a socket with an RX ring, and rcv_wake clears
    NETLINK_S_CONGESTED only when the receive queue is empty (7, 6.5)."""
    st = _socket(rx=2)
    st["congested"], st["rq_len"] = True, 1
    _poll(st)
    assert st["congested"] is True  # the queue still holds a message
    st["rq_len"] = 0
    _poll(st)
    assert st["congested"] is False
    no_ring = _socket(rx=0)
    no_ring["congested"] = True
    _poll(no_ring)
    assert no_ring["congested"] is True  # datagram_poll alone: no rcv_wake without an RX ring


def test_s6_5_an_overrun_that_starts_an_episode_is_not_yet_reported():
    """netlink_overrun on a socket that was not CONGESTED (NO_ENOBUFS off) starts an episode: its
    ENOBUFS is raised and the user has not been told of it yet; an overrun inside the episode
    changes nothing of that (6.5, 8)."""
    st = _socket(rx=1)
    st["enobufs_told"] = True  # the previous episode's ENOBUFS was reported
    _step(st, "alloc", j=0, size=10)  # the only frame is RESERVED now: the ring is full
    _step(st, "alloc_full", j=0, size=10)
    assert (st["congested"], st["sk_err"], st["enobufs_raised"], st["enobufs_told"]) == (True, True, 1, False)
    st["enobufs_told"] = True
    _step(st, "alloc_full", j=0, size=10)
    assert (st["enobufs_raised"], st["enobufs_told"]) == (1, True)


def test_s8_recvmsg_takes_the_copy_message_nearest_after_the_cursor():
    """The receive queue is FIFO and COPY frames are claimed at the cursor in ring order (6.3, 8):
    the message recvmsg dequeues is the one of the queued COPY frame the cursor passed longest ago,
    i.e. the first queued frame walking forward from the cursor."""
    from nlmmap.spec.protocol.names import choose_queue_head

    def head_of(nr, head, queued):
        return choose_queue_head({"rx_frame_nr": nr, "rx_head": head, "rx_queued": [k in queued for k in range(nr)]})

    assert head_of(4, 2, {0, 1}) == {"j": 0}  # claimed 0 then 1, the cursor now at 2
    assert head_of(4, 1, {2, 3}) == {"j": 2}  # claimed 2, 3 in an earlier lap
    assert head_of(4, 3, {3, 1}) == {"j": 3}
    assert head_of(4, 0, set()) == {"j": -1}


def test_s7_old_pollin_looks_at_the_frame_behind_the_head():
    """Before 4.4, POLLIN iff the frame just behind the kernel cursor (head - 1, head 0 -> frame_max)
    is not UNUSED (7)."""
    from nlmmap.spec.expr import evaluate
    from nlmmap.spec.protocol import Variant, poll_in

    old = poll_in(Variant(poll_head_minus_one=True))

    def pollin(head, status):
        st = {"rx_frame_nr": len(status), "rx_head": head, "rx_status": status, "rq_len": 0}
        return evaluate(old, st.__getitem__)

    V, U = int(Status.VALID), int(Status.UNUSED)
    assert pollin(2, [U, V, U]) is True and pollin(2, [U, U, V]) is False
    assert pollin(0, [U, U, V]) is True and pollin(0, [V, U, U]) is False


@pytest.mark.parametrize(("nr", "head", "busy", "space"), [
    (3, 0, 1, False), (3, 0, 2, True),  # frame_max 2: n = 0 + 1
    (3, 2, 1, False), (3, 2, 0, True),  # n = 2 + 1 = 3 > frame_max: 3 - frame_max = 1 (not 0)
    (5, 3, 1, False), (5, 3, 0, True),  # frame_max 4: n = 3 + 2 = 5, less frame_max: 1
    (5, 1, 3, False), (5, 1, 2, True),
    (1, 0, None, True),  # frame_max 0: n = head
])
def test_s10_dump_space_is_the_head_and_the_frame_half_a_ring_ahead(nr, head, busy, space):
    """netlink_dump_space (10): the head frame UNUSED and frame n = head + frame_max div 2 UNUSED,
    where n > frame_max becomes n - frame_max (frame_max, not frame_nr: one past the true modular
    position). ``busy`` is the one frame that is not UNUSED."""
    from nlmmap.spec.expr import evaluate
    from nlmmap.spec.protocol import dump_space

    status = [int(Status.VALID) if k == busy else int(Status.UNUSED) for k in range(nr)]
    st = {"rx_frame_nr": nr, "rx_head": head, "rx_status": status}
    assert evaluate(dump_space(), st.__getitem__) is space


def test_s4_mmap_without_a_ring_is_refused_with_einval():
    """netlink_mmap with no ring configured: EINVAL (4), the refusal of the spec's mmap action."""
    assert S.action("mmap").refusal == "EINVAL"


# --- the test family's rules (sections 1.1, 6.5, 11.1, 12.2; af_netlink.c netlink_setsockopt) -------
def test_s1_1_an_int_option_is_read_only_from_four_bytes():
    """netlink_setsockopt reads the int only when optlen >= sizeof(int), else val = 0; the
    membership options refuse group 0 (``!val || val - 1 >= ngroups``: EINVAL)."""
    from nlmmap.spec.abi import NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP, NETLINK_NO_ENOBUFS

    assert family.socket_option_effect(NETLINK_NO_ENOBUFS, b"\x01\0\0").value == 0
    assert family.socket_option_effect(NETLINK_NO_ENOBUFS, b"\x01\0\0\0").value == 1
    for option in (NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP):
        with pytest.raises(NetlinkError) as e:
            family.socket_option_effect(option, b"\0\0\0\0")
        assert e.value.errno == "EINVAL"
        assert family.socket_option_effect(option, b"\x20\0\0\0").value == 32


def test_s11_1_a_plain_send_of_sndbuf_minus_32_bytes_is_taken():
    """netlink_sendmsg: ``len > sk_sndbuf - 32`` is EMSGSIZE, so sndbuf - 32 bytes still go (11.1)."""
    family.check_plain_send(netlink.DEFAULT_SNDBUF - 32, netlink.DEFAULT_SNDBUF)
    with pytest.raises(NetlinkError) as e:
        family.check_plain_send(netlink.DEFAULT_SNDBUF - 31, netlink.DEFAULT_SNDBUF)
    assert e.value.errno == "EMSGSIZE"


def test_s6_5_a_user_space_unicast_sender_is_refused_not_dropped():
    """netlink_attachskb on a CONGESTED socket: a (non-blocking) user-space unicast sender gets
    EAGAIN (copy_refused); only a kernel sender's or a multicast message is dropped with an overrun
    (6.5)."""
    assert family.admission_action(from_kernel=False) == "copy_refused"
    assert family.admission_action(from_kernel=True) == "copy_congested_kernel"
    assert family.admission_action(from_kernel=False, broadcast=True) == "copy_congested_kernel"


def test_s12_2_a_batch_verdict_decides_the_queued_ids_not_after_its_id():
    """nfqnl_recv_verdict_batch walks the queue in enqueue order and decides every id up to the first
    one after the given id (serial arithmetic); none: ENOENT (12.2)."""
    assert family.batch_verdict_ids([3, 4, 5], 4) == [3, 4]
    assert family.batch_verdict_ids([0xFFFFFFFF, 0, 1], 0) == [0xFFFFFFFF, 0]
    with pytest.raises(NetlinkError) as e:
        family.batch_verdict_ids([5, 6], 4)
    assert e.value.errno == "ENOENT"


def test_s12_2_queue_messages_round_trip_with_their_nfgenmsg():
    """An nfqueue message carries nfgenmsg (family, version NFNETLINK_V0 = 0, res_id = the queue
    number in network byte order) before its attributes; a batch verdict parses as one; a verdict
    whose nlmsg_len claims more bytes than it has is refused (EINVAL)."""
    import struct

    packet = netlink.build_queue_packet(9, b"p", queue_num=0x0102)
    for msg in (packet, netlink.build_queue_verdict(9, queue_num=0x0102)):
        assert msg[17] == 0 and msg[18:20] == b"\x01\x02"
    assert netlink.parse_queue_verdict(netlink.build_queue_verdict(7, netlink.NF_DROP, batch=True)) == (
        7, netlink.NF_DROP, True)
    long = bytearray(netlink.build_queue_verdict(7))
    struct.pack_into("=I", long, 0, len(long) + 4)
    with pytest.raises(NetlinkError) as e:
        netlink.parse_queue_verdict(bytes(long))
    assert e.value.errno == "EINVAL"


def test_the_history_switch_names_rebuild_their_variants():
    """``queue_alloc_under_lock`` names the fix (the switch off); a variant names only the switches of
    the system asked for."""
    from nlmmap.spec.protocol import Variant

    assert Variant.from_names(["queue_alloc_under_lock"]).queue_alloc_outside_lock is False
    assert Variant.from_names(["default"]) == Variant()
    zc = Variant(tx_zero_copy=True)
    assert zc.names_for("socket") == ["tx_zero_copy"] and zc.names_for("queue") == []
    assert Variant(queue_alloc_outside_lock=False).names_for("queue") == ["queue_alloc_under_lock"]


BAD_ARGUMENTS = [
    ("a ring request that is no RingRequest", lambda: check_ring_geometry((4096, 1, 2048, 2))),
    ("the geometry of a tear-down", lambda: RingGeometry.from_request(RingRequest(0, 0, 0, 0))),
    ("a frame index past frame_max", lambda: RingGeometry(4096, 1, 2048, 2).frame_offset(2)),
    ("a bool as a socket option", lambda: abi.socket_option(True)),
    ("a ring option through the plain option path", lambda: family.socket_option_effect(6, b"\0" * 16)),
    ("a negative group", lambda: family.check_group(-1)),
    ("a delivery path that is neither ring nor copy", lambda: family.check_delivery("dma", 0)),
    ("a dump request without its count and size", lambda: family.parse_dump_request(netlink.build_message(
        family.DUMP_TYPE, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP, 0, 0, b"\0" * 4))),
    ("an errno number Linux does not have", lambda: errno_name(100000)),
    ("a system that is not socket or queue", lambda: system_by_name("pipe")),
]


@pytest.mark.parametrize(("what", "call"), BAD_ARGUMENTS, ids=[b[0] for b in BAD_ARGUMENTS])
def test_a_malformed_argument_is_einval(what, call):
    """A rule that refuses a malformed argument answers EINVAL, the kernel's errno for an invalid
    argument (a dump request the family cannot parse gets an error ACK of -EINVAL, section 20)."""
    with pytest.raises(NetlinkError) as e:
        call()
    assert e.value.errno == "EINVAL"


# --- socket creation and ring setup (sections 2.1, 3.1, 3.2, 13.3) ----------------------------------
def test_s2_1_a_new_socket_is_all_zero():
    """At socket creation every ring field, counter and flag is zero (2.1: no ring, head 0, nothing
    pending or queued, no error, no dump, not mapped), and so is every ghost account."""
    st = initial_states(S, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    scalars = {v.name: st[v.name] for v in S.state if not v.sort.endswith("array")}
    assert scalars == {name: (False if isinstance(value, bool) else 0) for name, value in scalars.items()}
    assert all(value in (0, False) for value in scalars.values())


def test_s3_1_a_new_ring_is_zeroed_even_where_an_old_one_was_written():
    """setsockopt(NETLINK_RX_RING) installs freshly zeroed blocks with head 0 (3.1 step 6.8, 6.6; 3.2:
    every frame UNUSED with a zero header), whatever the torn-down ring held; a tear-down sets head 0
    too (3.1 step 6.6)."""
    st = _socket(rx=3, tx=2)
    _step(st, "alloc", j=0, size=8)
    _step(st, "publish", j=0, len=8)
    _step(st, "copy_claim", len=20, group=3)
    _step(st, "skip_frame", j=0)
    for j in range(3):
        _step(st, "write_rx_header", j=j, len=77, group=9)
    _step(st, "fill_tx_frame", j=0, len=5, data=1)
    _step(st, "tx_copy")
    _step(st, "tx_validate")
    _step(st, "tx_act")
    _step(st, "munmap")
    _step(st, "recvmsg", j=1)
    _step(st, "teardown_rx_ring")
    _step(st, "teardown_tx_ring")
    assert (st["rx_head"], st["tx_head"]) == (0, 0)
    _step(st, "set_rx_ring", n=3, cap=1000)
    fresh = {"rx_status": Status.UNUSED, "rx_len": 0, "rx_group": 0, "rx_owned": 0, "rx_held": False, "rx_seq": 0,
             "rx_cred": False, "rx_mlen": 0, "rx_mgroup": 0, "rx_queued": False}
    assert {a: [st[a][j] for j in range(3)] for a in fresh} == {a: [v] * 3 for a, v in fresh.items()}
    assert st["rx_head"] == 0


def test_s13_3_group_0_is_no_multicast_group():
    """Group 0 means unicast: a multicast delivery to group 0 is refused (EINVAL); groups 1..32 of
    the family are taken (13.3, netlink_kernel_create's 32 groups at least)."""
    with pytest.raises(NetlinkError) as e:
        family.multicast_deliver(0, "a", joined=(), sockets=[("a", ())])
    assert e.value.errno == "EINVAL"
    assert family.multicast_deliver(32, "a", joined=(), sockets=[("a", ())]) == (True, ["a"])


def test_the_dump_services_payload_is_k_plus_b_mod_256():
    """The test family's dump (its docstring): message k's payload byte b is (k + b) mod 256, so
    every message of a dump is distinct and a misplaced byte shows."""
    hdr = netlink.NlMsgHdr.unpack(family.dump_request(2, 300))
    msgs = family.dump_messages(hdr, 5, 2, 300)
    assert [m[16:] for m in msgs] == [bytes((k + b) % 256 for b in range(300)) for k in range(2)]


def test_the_systems_assumptions_hold_of_their_initial_states():
    """A proof assumes the system's assumptions; they must hold of Linux's initial state, or every
    obligation would be proved vacuously."""
    from nlmmap.spec.expr import evaluate
    from nlmmap.spec.protocol import Variant, queue_system

    st = initial_states(S, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    assert evaluate(S.assumptions, st.__getitem__) is True
    Q = queue_system(Variant(queue_alloc_outside_lock=False))
    qst = initial_states(Q, {"rx_frame_nr": (2,)})[0]
    assert evaluate(Q.assumptions, qst.__getitem__) is True
    assert evaluate(Q.run_bound, qst.__getitem__) is True  # the runs the proofs cover include this one


def test_s12_2_a_cpu_is_free_again_once_its_packet_is_sent():
    """nfqnl_build_packet_message then __nfqnl_enqueue_packet (mainline): a CPU claims a frame, then
    under the queue lock assigns the id, publishes VALID and enqueues; after that it handles the
    next packet (12.2)."""
    from nlmmap.spec.protocol import Variant, queue_system

    Q = queue_system(Variant(queue_alloc_outside_lock=True))
    st = initial_states(Q, {"rx_frame_nr": (2,)})[0]
    apply_action(Q.action("queue_alloc"), st, {"c": 0})
    apply_action(Q.action("queue_send"), st, {"c": 0})
    assert (st["rx_status"][0], st["frame_id"][0], st["id_seq"]) == (Status.VALID, 1, 1)
    assert not enabled(Q.action("queue_send"), st, {"c": 0})  # nothing left to send
    assert enabled(Q.action("queue_alloc"), st, {"c": 0})


# --- the symbolic geometry of the layout proofs (sections 2.2, 3.1) ---------------------------------
#: Ring requests Linux accepts (3.1, 19), the documentation's example (2.4) and the u32 wrap (3.1.6.3.7).
ACCEPTED = [(4096, 4, 2048, 8), (4096, 1, 24, 170), (16384, 2, 4096, 8), (4096, 1, 1000, 4), (65536, 64, 16384, 256),
            (4096, 0x80000000, 2048, 0), (1 << 30, 1, 4096, 1 << 18), ((1 << 31) - 4096, 1, 4096, (1 << 19) - 1)]
#: ... and requests it refuses: block_size 2^31 (negative as an int), a frame larger than its block (no
#: frame per block), frame_nr off by one, no block (a tear-down), a block that is not a page multiple.
REFUSED = [(1 << 31, 1, 4096, 1 << 19), (4096, 1, 8192, 0), (4096, 4, 2048, 9), (4096, 0x80000000, 2048, 1),
           (4096, 0, 2048, 0), (4096 + 2048, 1, 2048, 3)]


def _geometry(req, page=4096):
    import z3

    from nlmmap.spec.protocol.geometry import Ring, accepted

    g = Ring("rx")
    s = z3.Solver()
    s.add(g.block_size == req[0], g.block_nr == req[1], g.frame_size == req[2], g.frame_nr == req[3])
    s.add(accepted(g, z3.IntVal(page)))
    return s.check() == z3.sat


@pytest.mark.parametrize("req", ACCEPTED)
def test_s3_1_the_layout_proofs_cover_the_geometries_linux_accepts(req):
    """geometry.accepted is netlink_set_ring's rule for a create (3.1 step 6.3): every request Linux
    accepts satisfies it, so no accepted geometry is left out of the layout proofs."""
    assert _geometry(req) and check_ring_geometry(RingRequest(*req)) == RingRequest(*req)


@pytest.mark.parametrize("req", REFUSED)
def test_s3_1_the_layout_proofs_leave_out_what_linux_refuses(req):
    assert not _geometry(req)


def test_s2_2_each_layout_obligation_is_about_4k_pages_and_frame_0():
    """The layout obligations are not vacuous: their hypotheses hold with 4 KiB pages (x86-64), of
    frame 0 of a one-block ring (2.2), so the goals are proved of the rings Linux builds."""
    import z3

    from nlmmap.spec.protocol.geometry import layout_obligations

    for name, _what, build in layout_obligations():
        hyps, _goal = build()
        s = z3.Solver()
        s.add(*hyps, z3.Int("page_size") == 4096, z3.Int("rx_block_nr") == 1, z3.Int("rx_block_size") == 4096,
              z3.Int("rx_frame_size") == 2048, z3.Int("rx_i") == 0)
        assert s.check() == z3.sat, name


@pytest.mark.parametrize(("prop", "offset"), [
    ("FramesInsideTheirBlock", lambda g, blk, slot: blk * g.block_size + (slot + 1) * g.frame_size),
    ("FramesInsideTheRing", lambda g, blk, slot: blk * g.block_size + slot * g.frame_size - 1),
])
def test_s2_2_a_frame_offset_off_by_a_frame_or_a_byte_fails_its_obligation(monkeypatch, prop, offset):
    """A frame shifted one frame on (the last one then crosses its block's end) or one byte back
    (frame 0 then starts before the ring) is caught by the obligation that protects it (2.2)."""
    from nlmmap.spec.protocol import geometry
    from nlmmap.spec.verdict import Verdict

    monkeypatch.setattr(geometry, "frame_offset", offset)
    res = {r.property: r.verdict for r in geometry.prove_layout()}
    assert res[prop] is Verdict.FAILED


# --- the properties say what section 17 says, on concrete states -------------------------------------
def _holds(system, prop: str, st, action: str | None = None, **params) -> bool:
    from nlmmap.spec.expr import evaluate

    if action is None:
        formula = next(i.formula for i in system.invariants if i.name == prop)
    else:
        formula = next(sp.per_action[action] for sp in system.step_properties if sp.name == prop)
    look = {**st, **params}
    return bool(evaluate(formula, look.__getitem__))


def test_s9_the_ring_counts_as_full_only_when_every_frame_is_skip():
    """alloc_all_skip (9): netlink_forward_ring came back to its start because every frame is SKIP;
    NoGratuitousDrop must refuse it when any frame, the first included, is not SKIP."""
    st = _socket(rx=2)
    st["rx_status"][1] = Status.SKIP
    assert not _holds(S, "NoGratuitousDrop", st, "alloc_all_skip", size=8)
    st["rx_status"][0] = Status.SKIP
    assert _holds(S, "NoGratuitousDrop", st, "alloc_all_skip", size=8)


@pytest.mark.parametrize(("action", "mapped", "pending", "rings"), [
    ("set_rx_ring", 1, 0, 0), ("set_rx_ring", 0, 0, 2), ("teardown_rx_ring", 1, 0, 2), ("teardown_rx_ring", 0, 1, 2),
    ("set_tx_ring", 1, 0, 0), ("set_tx_ring", 0, 0, 2), ("teardown_tx_ring", 1, 0, 2), ("teardown_tx_ring", 0, 1, 2),
])
def test_s3_1_a_ring_changes_only_unmapped_with_nothing_in_flight(action, mapped, pending, rings):
    """netlink_set_ring: EBUSY while mapped, with frames in flight (RX: pending skbs; TX: a walk
    running), or on a create over an existing ring (3.1 step 6.1-6.3.1); ReconfigureOnlyWhenIdle
    says each of these alone forbids the change."""
    st = _socket(rx=rings, tx=rings, mapped=False)
    st["mapped"], st["rx_pending"], st["tx_phase"] = mapped, pending, pending
    assert not _holds(S, "ReconfigureOnlyWhenIdle", st, action, n=2, cap=1000)


def test_s11_2_a_kick_that_returned_left_no_valid_frame_under_the_head():
    """TxProgress (11.2, 17.9): after a kick that returned >= 0 the frame under the TX head is not
    VALID, whatever else holds."""
    st = _socket(tx=2)
    st["tx_outcome"], st["tx_status"][0] = 1, Status.VALID  # TX_DRAINED, the walk idle
    assert not _holds(S, "TxProgress", st)


@pytest.mark.parametrize("var", ["rx_frame_nr", "tx_frame_nr", "rx_capacity", "tx_capacity", "rq_len", "mapped",
                                 "claims", "enobufs_reported"])
def test_s2_1_sizes_and_counters_are_never_negative(var):
    """TypeOk (1.3, 2.1): frame counts, capacities, the queue length, the mappings and the counters
    are never negative."""
    st = _socket(rx=0, tx=0, mapped=False)
    assert _holds(S, "TypeOk", st)
    st[var] = -1
    assert not _holds(S, "TypeOk", st)


def test_s1_3_a_tx_nm_len_is_a_u32():
    st = _socket(tx=1)
    st["tx_len"][0] = U32 - 1
    assert _holds(S, "TypeOk", st)
    st["tx_len"][0] = U32
    assert not _holds(S, "TypeOk", st)


def test_s11_3_only_the_frame_a_3_10_walk_took_in_place_is_pending():
    """3.10 (11.3, 17.8): while the walk holds a frame it took zero-copy, exactly one skb aliases the
    TX ring (tx_pending 1); otherwise none."""
    from nlmmap.spec.protocol import Variant

    ZC = socket_system(Variant(tx_zero_copy=True))
    st = initial_states(ZC, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    assert _holds(ZC, "TxNeverPending", st)
    st["tx_phase"], st["tx_inplace"], st["tx_pending"] = 1, True, 1
    assert _holds(ZC, "TxNeverPending", st)
    st["tx_pending"] = 2
    assert not _holds(ZC, "TxNeverPending", st)


# --- a second sweep (2026-12-03: 138 of 210 sampled mutants; 6 real gaps) ------------------------
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


def test_the_queue_starts_with_every_array_pinned_from_its_first_index():
    """The queue system's ``init`` sets every one of its arrays (the socket system's rings start
    with no frames), and at index 0 (the first frame, the first CPU, the first packet id) and, for
    an array of frames, at the ring's last frame: a quantifier that starts at 1 or stops one short
    leaves a cell free that the model starts at its value, and the prover would start from more
    states than the kernel does."""
    import z3

    from nlmmap.spec.cells import CellEncoder, _z
    from nlmmap.spec.protocol import system_by_name
    from nlmmap.spec.z3enc import make_solver

    system = system_by_name("queue")
    frames = 3
    enc = CellEncoder(system, frames=frames)  # quantifier-free: a free cell is found at once
    st = enc.fresh_state("init")
    solver = make_solver(timeout_ms=20000, seed=0)
    solver.add(_z(enc.expr(system.assumptions, st)), _z(enc.expr(system.init, st)), *enc.scope_facts(st))
    index = {v.name: v.index for v in system.state}
    start = initial_states(system, {"rx_frame_nr": (1,)})[0]  # what the model starts from
    for arr in (v.name for v in system.state if v.sort.endswith("array")):
        value = start[arr].default
        cells = [(0, [])]
        if index[arr] is not None:
            n = st[index[arr]]
            cells = [(k, [n == k + 1]) for k in range(frames)]  # the last frame of each ring size
        for k, cond in cells:
            got = solver.check(*cond, _z(st[arr].at(k)) != value)
            assert got == z3.unsat, f"queue: init leaves {arr}[{k}] free ({got})"


def test_the_queue_window_is_no_longer_than_the_ids_assigned():
    """QueueIsSerialWindow: the queue list (``q_head`` .. ``id_seq``) holds at most the ids
    assigned so far. A head one id behind the first one ever assigned (id 0, never a packet's)
    breaks it; the head at the first id, or past every id (an empty queue), keeps it."""
    from nlmmap.spec.expr import evaluate
    from nlmmap.spec.protocol import system_by_name
    from nlmmap.spec.protocol.queue import FIRST_ID

    system = system_by_name("queue")
    inv = next(i for i in system.invariants if i.name == "QueueIsSerialWindow")
    base = dict(initial_states(system, {"rx_frame_nr": (2,)})[0])
    assert evaluate(inv.formula, base)  # nothing assigned: an empty window
    five = dict(base, id_seq=FIRST_ID + 4, assigned=5)
    assert evaluate(inv.formula, dict(five, q_head=FIRST_ID))  # the five ids queued
    assert evaluate(inv.formula, dict(five, q_head=FIRST_ID + 5))  # all five decided
    assert not evaluate(inv.formula, dict(five, q_head=FIRST_ID - 1))  # six ids, one never assigned
