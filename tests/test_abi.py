"""ABI rules of kernel-protocol.md sections 1-4: constants, layouts, geometry errnos, offsets."""

import dataclasses
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlmmap.spec import abi, netlink
from nlmmap.spec.abi import FrameHeader, RingGeometry, RingRequest, Status, validate_ring_request
from nlmmap.spec.errors import NetlinkError, errno_code, errno_name


def fact_sheet_section_1(shared) -> str:
    text = shared("reference", "kernel-protocol.md").read_text()
    return text[text.index("## 1. ABI"):text.index("## 2. ")]


def fact_sheet_constants(sec: str) -> dict[str, int]:
    """Every ``NAME = value`` of section 1 of the fact sheet (the kernel facts), by NAME."""
    found: dict[str, int] = {}
    for name, value in re.findall(r"`([A-Z_]+)` = (?:[^*\n,]*? = )?\*\*(0x[0-9a-f]+|\d+)\*\*", sec):
        found[name] = int(value, 0)
    for name, value in re.findall(r"`([A-Z_]+)` = (\d+)\b", sec):
        found.setdefault(name, int(value))
    lists = (("NETLINK_", r"neighbours: ([^)]*)\)"), ("NDIAG_SHOW_", r"`NDIAG_SHOW_RING_CFG` = \S+ \(([^)]*)\)"))
    for prefix, where in lists:
        for name, value in re.findall(r"([A-Z_]+) (0x[0-9a-f]+|\d+)", re.search(where, sec).group(1)):
            found[prefix + name] = int(value, 0)
    for value, name in re.findall(r"^\| (\d+) \| `NL_MMAP_STATUS_([A-Z]+)`", sec, re.M):
        found[f"Status.{name}"] = int(value)
    return found


def test_s1_constants_are_the_fact_sheets(shared):
    """Every ABI constant equals the value section 1 of the fact sheet gives (read from the sheet,
    not written again here); the sheet must name every socket option, status and diag constant."""
    facts = fact_sheet_constants(fact_sheet_section_1(shared))
    ours = {name: getattr(abi, name) for name in abi.__all__ if isinstance(getattr(abi, name), int)
            and name.startswith(("SOL_", "NETLINK_", "NDIAG_", "NL_MMAP_")) and name != "NL_MMAP_REQ_LEN"}
    ours.update({f"Status.{st.name}": int(st) for st in Status})
    assert set(ours) <= set(facts), f"not in the fact sheet: {sorted(set(ours) - set(facts))}"
    assert {n: facts[n] for n in ours} == ours
    assert {abi.socket_option(n) for n in abi.SOCKET_OPTIONS} == {facts[n] for n in abi.SOCKET_OPTIONS}


@pytest.mark.parametrize("struct_name,cls", [("nl_mmap_req", RingRequest), ("nl_mmap_hdr", FrameHeader)])
def test_s1_2_s1_3_layouts_are_the_fact_sheets(shared, struct_name, cls):
    """Size and field offsets of the two structs, from the fact sheet's tables: each field packed
    with a distinct value is found at its offset."""
    sec = fact_sheet_section_1(shared)
    head = re.search(rf"### 1\.\d `struct {struct_name}`[^\n]*— (\d+) bytes", sec)
    table = sec[head.end():sec.index("\n### ", head.end())]
    offsets = {name: int(off) for off, name in re.findall(r"^\| (\d+) \| `nm_([a-z_]+)`", table, re.M)}
    assert sorted(offsets) == sorted(f.name for f in dataclasses.fields(cls))
    values = {name: 0x01010101 * (k + 1) for k, name in enumerate(offsets)}
    raw = cls(**values).pack()
    assert len(raw) == int(head.group(1)) and cls.unpack(raw) == cls(**values)
    assert {name: struct.unpack_from("=I", raw, off)[0] for name, off in offsets.items()} == values
    if cls is RingRequest:
        assert abi.NL_MMAP_REQ_LEN == len(raw)
    else:  # the named field offsets the model, the implementation and the suite use
        assert {name: getattr(abi, f"NM_{name.upper()}_OFFSET") for name in offsets} == offsets
        assert abi.NM_STATUS_SIZE == offsets["len"] - offsets["status"]


def test_s1_1_option_names_and_numbers():
    assert abi.socket_option("NETLINK_TX_RING") == abi.NETLINK_TX_RING and abi.socket_option(6) == 6
    with pytest.raises(NetlinkError) as e:
        abi.socket_option("NETLINK_NOPE")
    assert e.value.errno == "ENOPROTOOPT"


def test_s1_2_nl_mmap_req_layout():
    req = RingRequest(4096, 4, 2048, 8)
    assert RingRequest.unpack(req.pack() + b"extra") == req  # longer optlen accepted, 16 bytes read
    # the bytes a real 4.5 kernel accepted in the recorded transcript: 00100000 04000000 00080000 08000000
    assert RingRequest.unpack(bytes.fromhex("00100000040000000008000008000000")) == req


def test_s1_3_nl_mmap_hdr_garbage_status():
    odd = FrameHeader.unpack(struct.pack("=6I", 0xDEADBEEF, 0, 0, 0, 0, 0))
    assert odd.status_name == "0xdeadbeef"  # any u32 is a possible status value


def test_s1_5_message_alignment():
    assert [abi.nl_mmap_msg_align(x) for x in (0, 1, 3, 4, 5, 24, 25)] == [0, 4, 4, 4, 8, 24, 28]


GEOMETRY_RULES = [
    # (section, request, errno or None)
    ("3.1 valid 4096x4 / 2048x8", RingRequest(4096, 4, 2048, 8), None),
    ("3.1 frame_size 24 accepted", RingRequest(4096, 1, 24, 170), None),
    ("3.1 block of several pages", RingRequest(16384, 2, 4096, 8), None),
    ("3.1 slack at end of block", RingRequest(4096, 1, 1000, 4), None),
    ("3.1 all-zero request (tear-down)", RingRequest(0, 0, 0, 0), None),
    ("3.1.4 tear-down ignores sizes", RingRequest(123, 0, 7, 0), None),
    ("3.1.4 tear-down with frame_nr != 0", RingRequest(4096, 0, 2048, 2), "EINVAL"),
    ("3.1.3.2 block_size 0", RingRequest(0, 1, 2048, 2), "EINVAL"),
    ("3.1.3.2 block_size top bit set", RingRequest(0x80000000, 1, 4096, 0x80000), "EINVAL"),
    ("3.1.3.3 block_size not a page multiple", RingRequest(4097, 1, 2048, 2), "EINVAL"),
    ("3.1.3.4 frame_size < 24", RingRequest(4096, 1, 20, 204), "EINVAL"),
    ("3.1.3.5 frame_size not a multiple of 4", RingRequest(4096, 1, 26, 157), "EINVAL"),
    ("3.1.3.6 frame larger than block", RingRequest(4096, 1, 8192, 0), "EINVAL"),
    ("3.1.3.7 frame_nr != fpb * block_nr", RingRequest(4096, 4, 2048, 7), "EINVAL"),
    ("3.1.3.7 u32 wrap makes the product match", RingRequest(4096, 0x80000000, 2048, 0), None),
]


@pytest.mark.parametrize("section,req,errno", GEOMETRY_RULES, ids=[r[0] for r in GEOMETRY_RULES])
def test_s3_1_geometry_rules(section, req, errno):
    if errno is None:
        assert validate_ring_request(req.pack()) == req
    else:
        with pytest.raises(NetlinkError) as e:
            validate_ring_request(req.pack())
        assert e.value.errno == errno and e.value.message


@pytest.mark.parametrize("n", [0, 1, 4, 15])
def test_s3_1_4_optlen_shorter_than_16_is_einval(n):
    with pytest.raises(NetlinkError) as e:
        validate_ring_request(b"\0" * n)
    assert e.value.errno == "EINVAL" and "optlen" in e.value.message


def test_s3_2_page_size_parameter():
    req = RingRequest(65536, 1, 16384, 4)
    assert validate_ring_request(req.pack(), page_size=65536) == req
    with pytest.raises(NetlinkError):
        validate_ring_request(RingRequest(4096, 1, 2048, 2).pack(), page_size=65536)
    with pytest.raises(NetlinkError) as e:
        validate_ring_request(req.pack(), page_size=1000)
    assert e.value.errno == "EINVAL"


def test_s2_2_frame_offsets_use_block_slot_formula():
    g = RingGeometry(4096, 3, 1000, 12)  # 4 frames per block, 96-byte gap at each block's end
    assert [g.frame_offset(i) for i in range(6)] == [0, 1000, 2000, 3000, 4096, 5096]
    assert g.frame_at(4000) is None and g.frame_at(4096) == 4 and g.frame_at(1999) == 1
    assert g.next_index(11) == 0 and g.next_index(3) == 4
    with pytest.raises(NetlinkError):
        g.frame_offset(12)


@given(fs=st.integers(1, 64).map(lambda k: 16 * k), fpb=st.integers(1, 9), slack=st.sampled_from([0, 0, 16, 96]),
       block_nr=st.integers(1, 5), data=st.data())
def test_s2_2_stride_is_frame_size_exactly_when_the_block_slot_offsets_are_back_to_back(fs, fpb, slack, block_nr, data):
    """``RingGeometry.stride`` (what whole-run readers and writers rely on) against its definition:
    every frame_offset(i) == i * frame_size."""
    frame_nr = data.draw(st.integers(1, fpb * block_nr))
    g = RingGeometry(fpb * fs + slack, block_nr, fs, frame_nr)
    back_to_back = all(g.frame_offset(i) == i * fs for i in range(frame_nr))
    assert g.stride == (fs if back_to_back else 0)


def test_s2_4_single_mapping_rx_then_tx():
    rx = RingGeometry(4096, 1, 1024, 4)
    tx = RingGeometry(4096, 1, 2048, 2)
    lay = abi.mapping_layout(rx, tx)
    assert lay.size == 8192 and lay.tx_base == 4096
    assert lay.frame_offset("tx", 1) == 6144
    assert lay.locate(6150).ring == "tx" and lay.locate(6150).index == 1
    assert abi.mapping_layout(None, tx).tx_base == 0


MMAP_RULES = [
    ("4 length equals total", 8192, 0, None),
    ("4 length rounded up to a page", 8192 - 100, 0, None),
    ("4 length short", 4096, 0, "EINVAL"),
    ("4 length long", 12288, 0, "EINVAL"),
    ("4 offset non-zero", 8192, 4096, "EINVAL"),
]


@pytest.mark.parametrize("section,length,offset,errno", MMAP_RULES, ids=[r[0] for r in MMAP_RULES])
def test_s4_mmap_rules(section, length, offset, errno):
    lay = abi.mapping_layout(RingGeometry(4096, 1, 1024, 4), RingGeometry(4096, 1, 2048, 2))
    if errno is None:
        abi.check_mmap_request(lay, length, offset)
    else:
        with pytest.raises(NetlinkError) as e:
            abi.check_mmap_request(lay, length, offset)
        assert e.value.errno == errno


def test_s4_mmap_without_ring_is_einval():
    with pytest.raises(NetlinkError) as e:
        abi.check_mmap_request(abi.mapping_layout(None, None), 4096)
    assert e.value.errno == "EINVAL"


BAD_INPUT = [
    (lambda: RingRequest(-1, 0, 0, 0), "EINVAL"),
    (lambda: RingRequest(1 << 32, 0, 0, 0), "EINVAL"),
    (lambda: RingRequest("4096", 0, 0, 0), "EINVAL"),
    (lambda: RingRequest.unpack("not bytes"), "EFAULT"),
    (lambda: validate_ring_request(None), "EFAULT"),
    (lambda: FrameHeader.unpack(b"\0" * 23), "EINVAL"),
    (lambda: FrameHeader(status=-1), "EINVAL"),
    (lambda: netlink.NlMsgHdr.unpack(b"\0" * 10), "EINVAL"),
    (lambda: list(netlink.split_messages(42)), "EFAULT"),
    (lambda: netlink.build_ack(b"\0" * 4, 1), "EINVAL"),
    (lambda: netlink.build_ack(netlink.build_message(1, 5, 0, 0), 1, error=5), "EINVAL"),
    (lambda: errno_code("NOPE"), "EINVAL"),
]


@pytest.mark.parametrize("call,errno", BAD_INPUT)
def test_bad_input_gives_typed_error(call, errno):
    with pytest.raises(NetlinkError) as e:
        call()
    assert e.value.errno == errno and e.value.message


def test_errno_names_round_trip():
    assert errno_name(errno_code("EAGAIN")) == "EAGAIN" and errno_name(-95) == "EOPNOTSUPP"
    assert NetlinkError("EBUSY", "x").code == 16
    with pytest.raises(TypeError):
        NetlinkError("NOT_AN_ERRNO", "x")


def test_s20_input_loop_stops_silently_at_malformed_header():
    a = netlink.build_message(0x1, netlink.NLM_F_REQUEST, 1, 0)
    bad = struct.pack("=IHHII", 8, 0x1, 0, 2, 0)  # nlmsg_len < 16
    c = netlink.build_message(0x1, netlink.NLM_F_REQUEST, 3, 0)
    assert [h.seq for h, _ in netlink.split_messages(a + bad + c)] == [1]
    too_long = struct.pack("=IHHII", 100, 0x1, 0, 4, 0)
    assert [h.seq for h, _ in netlink.split_messages(a + too_long)] == [1]
    assert list(netlink.split_messages(a + b"\0" * 15)) != [] and len(list(netlink.split_messages(b"\0" * 15))) == 0



def test_s20_input_loop_steps_to_the_aligned_length_and_keeps_the_last_bytes():
    """netlink_rcv_skb pulls NLMSG_ALIGN(nlmsg_len) bytes (at most what is left): a 17-byte
    message is followed by the next one at offset 20; a last message whose padding is missing is
    still taken whole (af_netlink.c, netlink_rcv_skb)."""
    a = struct.pack("=IHHII", 17, 0x1, netlink.NLM_F_REQUEST, 1, 0) + b"x\0\0\0"  # 17 bytes + padding
    b = netlink.build_message(0x1, netlink.NLM_F_REQUEST, 2, 0)
    got = list(netlink.split_messages(a + b))
    assert [(h.seq, len(raw)) for h, raw in got] == [(1, 17), (2, 16)]
    assert got[1][1] == b
    tail = struct.pack("=IHHII", 17, 0x1, netlink.NLM_F_REQUEST, 3, 0) + b"y"  # no padding after it
    assert [(h.seq, raw) for h, raw in netlink.split_messages(b + tail)] == [(2, b), (3, tail)]

ACKS = [
    # (request type, flags, payload bytes, expected (error, ack sent))
    ("20 control type without ACK flag", 0x1, netlink.NLM_F_REQUEST, 0, (0, False)),
    ("20 control type with ACK", 0x1, netlink.NLM_F_REQUEST | netlink.NLM_F_ACK, 0, (0, True)),
    ("20 no NLM_F_REQUEST with ACK", 0x20, netlink.NLM_F_ACK, 4, (0, True)),
    ("20 type above RTM_MAX", 0x100, netlink.NLM_F_REQUEST, 4, (-95, True)),
    ("20 no payload byte ignored", 0x20, netlink.NLM_F_REQUEST | netlink.NLM_F_ACK, 0, (0, True)),
    ("20 no handler: EOPNOTSUPP", 0x20, netlink.NLM_F_REQUEST, 4, (-95, True)),
]


def test_nlmsghdr_field_offsets_are_where_the_header_puts_each_field():
    """The named nlmsghdr offsets (used by the suite's boundary mutants and the benchmarks) against
    a header built with a distinct value in every field: len u32, type u16, flags u16, seq u32, pid u32."""
    msg = netlink.build_message(0x1234, 0x5678, 0x9ABCDEF0, 0x0FEDCBA9, b"\x01" * 8)
    fields = {netlink.NLMSG_LEN_OFFSET: ("=I", 24), netlink.NLMSG_TYPE_OFFSET: ("=H", 0x1234),
              netlink.NLMSG_FLAGS_OFFSET: ("=H", 0x5678), netlink.NLMSG_SEQ_OFFSET: ("=I", 0x9ABCDEF0),
              netlink.NLMSG_PID_OFFSET: ("=I", 0x0FEDCBA9)}
    assert len(fields) == 5 and sorted(fields) == [0, 4, 6, 8, 12]
    assert {off: struct.unpack_from(fmt, msg, off)[0] for off, (fmt, _) in fields.items()} == {
        off: v for off, (_, v) in fields.items()}


def test_queue_packet_id_offset_is_where_the_packet_message_holds_the_id():
    msg = netlink.build_queue_packet(0x12345678, b"\xab" * 40)
    assert msg.count(bytes.fromhex("12345678")) == 1
    assert struct.unpack_from(">I", msg, netlink.QUEUE_PACKET_ID_OFFSET)[0] == 0x12345678
    assert netlink.parse_queue_packet(msg)[0] == 0x12345678


@pytest.mark.parametrize("section,type_,flags,plen,want", ACKS, ids=[a[0] for a in ACKS])
def test_s20_route_family_answers(section, type_, flags, plen, want):
    msg = netlink.build_message(type_, flags, 9, 0, b"\x02" * plen)
    hdr = netlink.NlMsgHdr.unpack(msg)
    r = netlink.route_family_answer(hdr)
    assert (r.error, r.ack) == want


UNPRIVILEGED = [
    # (what, type, payload bytes, expected (error, ack sent)) for a sender without CAP_NET_ADMIN
    ("0x0f is a control type: no handler is asked", 0x0F, 4, (0, False)),
    ("0x10 (RTM_BASE) is not: a NEW kind needs CAP_NET_ADMIN", 0x10, 4, (-1, True)),
    ("RTM_MAX itself is handled: kind 3 needs CAP_NET_ADMIN", netlink.RTM_MAX, 4, (-1, True)),
    ("RTM_MAX + 1 is EOPNOTSUPP before any check", netlink.RTM_MAX + 1, 4, (-95, True)),
    ("one payload byte (a rtgenmsg) is enough to be checked", 0x20, 1, (-1, True)),
    ("no payload byte: ignored before the check", 0x20, 0, (0, False)),
    ("a GET kind needs no CAP_NET_ADMIN", 0x22, 4, (-95, True)),
]


@pytest.mark.parametrize("what,type_,plen,want", UNPRIVILEGED, ids=[u[0] for u in UNPRIVILEGED])
def test_s20_rtnetlink_rcv_msg_order_of_checks_for_an_unprivileged_sender(what, type_, plen, want):
    """netlink_rcv_skb skips types < NLMSG_MIN_TYPE; rtnetlink_rcv_msg (4.5): type > RTM_MAX ->
    EOPNOTSUPP, then nlmsg_len < sizeof(struct rtgenmsg) -> 0, then a non-GET kind without
    CAP_NET_ADMIN -> EPERM (net/core/rtnetlink.c, net/netlink/af_netlink.c)."""
    hdr = netlink.NlMsgHdr.unpack(netlink.build_message(type_, netlink.NLM_F_REQUEST, 9, 0, b"\x02" * plen))
    r = netlink.route_family_answer(hdr, cap_net_admin=False)
    assert (r.error, r.ack) == want


def test_s20_ack_lengths_without_an_error_and_the_error_range():
    """An ACK of error 0 echoes only the request's header (36 bytes), as does an error ACK with
    NETLINK_CAP_ACK; the error is 0 or a negative errno, never a bool or a positive number."""
    req = netlink.build_message(0x100, 1, 5, 0, b"abcdefgh")
    hdr = netlink.NlMsgHdr.unpack(req)
    assert netlink.ack_length(hdr, 0) == 36 == len(netlink.build_ack(req, 7, 0))
    assert netlink.ack_length(hdr, -95, cap_ack=True) == 36 == netlink.ack_length(hdr, 0, cap_ack=True)
    assert netlink.ack_length(hdr, -95) == 44 == len(netlink.build_ack(req, 7, -95))
    for bad in (True, False, 1, -4096, 0.0):
        with pytest.raises(NetlinkError) as e:
            netlink.build_ack(req, 7, bad)
        assert e.value.errno == "EINVAL"


def test_a_queue_packet_parse_refuses_what_is_not_one():
    good = netlink.build_queue_packet(5, b"pay")
    assert netlink.parse_queue_packet(good) == (5, b"pay")
    wrong_type = bytearray(good)
    struct.pack_into("=H", wrong_type, 4, 0x0301)  # a verdict's type
    for bad in (bytes(wrong_type), good[:19], good[:len(good) - 4]):
        with pytest.raises(NetlinkError) as e:
            netlink.parse_queue_packet(bad)
        assert e.value.errno == "EINVAL"

def test_s20_ack_layout_and_lengths():
    req = netlink.build_message(0x1, 5, 0x1001, 0)
    ack = netlink.build_ack(req, 7)
    assert len(ack) == 36 and ack[:16] == struct.pack("=IHHII", 36, 2, 0, 0x1001, 7) and ack[20:] == req
    req20 = netlink.build_message(0x100, 1, 5, 0, b"abcd")
    err = netlink.build_ack(req20, 7, -95)
    assert len(err) == 40 and struct.unpack_from("=i", err, 16)[0] == -95 and err[20:] == req20
    assert len(netlink.build_ack(req20, 7, -95, cap_ack=True)) == 36
    odd = netlink.build_message(0x100, 1, 5, 0, b"abcde")  # 21 bytes: the reply is padded to 44
    assert netlink.ack_length(netlink.NlMsgHdr.unpack(odd), -95) == 44 == len(netlink.build_ack(odd, 7, -95))


def test_s11_2_tx_frame_nm_len_bound():
    assert netlink.validate_tx_frame(FrameHeader(Status.VALID, 2024), 2048) == 2024
    with pytest.raises(NetlinkError) as e:
        netlink.validate_tx_frame(FrameHeader(Status.VALID, 2025), 2048)
    assert e.value.errno == "EINVAL"


def test_nlattr_parsing_structure():
    attrs = struct.pack("=HH", 8, 1) + b"abcd" + struct.pack("=HH", 5, 0x8002) + b"x\0\0\0" + b"\xff\xff"
    got, left = netlink.parse_attributes(attrs)
    assert [(a.type, a.nested, a.payload) for a in got] == [(1, False, b"abcd"), (2, True, b"x")] and left == 2
    bad = struct.pack("=HH", 3, 1) + b"abcd"
    assert netlink.parse_attributes(bad) == ([], 8)


def test_nlattr_empty_payloads_type_mask_and_the_last_of_a_type():
    """nla_ok takes an attribute of nla_len 4 (no payload); nla_type masks NLA_F_NESTED and
    NLA_F_NET_BYTEORDER (bits 15 and 14) off the type; nla_parse keeps the last attribute of a
    type, so a verdict with two NFQA_VERDICT_HDR acts on the second (lib/nlattr.c,
    include/uapi/linux/netlink.h)."""
    attrs = struct.pack("=HH", 4, 3) + struct.pack("=HH", 6, 0x4005) + b"ab\0\0" + struct.pack("=HH", 4, 0xC001)
    got, left = netlink.parse_attributes(attrs)
    assert [(a.type, a.nested, a.net_byteorder, a.payload) for a in got] == [
        (3, False, False, b""), (5, False, True, b"ab"), (1, True, True, b"")] and left == 0
    first = netlink.build_queue_verdict(7, netlink.NF_ACCEPT)
    second = struct.pack("=HH", 12, netlink.NFQA_VERDICT_HDR) + struct.pack(">II", netlink.NF_DROP, 9)
    two = bytearray(first + second)
    struct.pack_into("=I", two, 0, len(two))
    assert netlink.parse_queue_verdict(bytes(two)) == (9, netlink.NF_DROP, False)


@pytest.mark.parametrize("page_size", [2048, 4097, 12288, 0, -4096, True, 4096.0, "4096"])
def test_a_page_size_that_is_not_a_power_of_two_of_at_least_4096_is_refused(page_size):
    with pytest.raises(NetlinkError) as e:
        abi.check_page_size(page_size)
    assert e.value.errno == "EINVAL"


@pytest.mark.parametrize("page_size", [4096, 16384, 65536])
def test_power_of_two_page_sizes_are_taken(page_size):
    assert abi.check_page_size(page_size) == page_size



def test_queue_message_parsers_refuse_what_lacks_their_header_attribute():
    """parse_queue_packet needs an NFQA_PACKET_HDR of at least 4 bytes (the packet id), and
    parse_queue_verdict a verdict type, a length within the message and an NFQA_VERDICT_HDR of 8."""
    def msg(type_: int, attrs: bytes) -> bytes:
        return netlink.build_message(type_, 0, 0, 0, b"\0" * 4 + attrs)

    def nla(t: int, payload: bytes) -> bytes:
        return (struct.pack("=HH", 4 + len(payload), t) + payload).ljust(4 + len(payload) + (-len(payload) % 4), b"\0")

    packet = (netlink.NFNL_SUBSYS_QUEUE << 8) | netlink.NFQNL_MSG_PACKET
    assert netlink.parse_queue_packet(msg(packet, nla(netlink.NFQA_PACKET_HDR, struct.pack(">I", 77)))) == (77, b"")
    verdict = netlink.build_queue_verdict(3)
    short_hdr = msg((netlink.NFNL_SUBSYS_QUEUE << 8) | netlink.NFQNL_MSG_VERDICT,
                    nla(netlink.NFQA_VERDICT_HDR, b"\0" * 7))
    bad = {netlink.parse_queue_packet: [msg(packet, b""), msg(packet, nla(netlink.NFQA_PACKET_HDR, b"\0" * 3))],
           netlink.parse_queue_verdict: [verdict[:-4], short_hdr, msg(packet, verdict[20:])]}
    for parse, msgs in bad.items():
        for m in msgs:
            with pytest.raises(NetlinkError) as e:
                parse(m)
            assert e.value.errno == "EINVAL", (parse.__name__, m.hex())


@pytest.mark.parametrize("name", [5, None, b"EINVAL", "errorcode", "EFROB"])
def test_errno_code_refuses_what_is_no_errno_name_with_einval(name):
    with pytest.raises(NetlinkError) as e:
        errno_code(name)
    assert e.value.errno == "EINVAL"


@pytest.mark.parametrize("field,value", [("type", True), ("type", 0x10000), ("type", 1.0), ("flags", -1),
                                         ("flags", False), ("flags", "1")])
def test_a_nlmsghdr_type_or_flags_that_is_no_u16_is_einval(field, value):
    kw = {"len": 16, "type": 1, "flags": 0, "seq": 0, "portid": 0, field: value}
    with pytest.raises(NetlinkError) as e:
        netlink.NlMsgHdr(**kw)
    assert e.value.errno == "EINVAL"
