"""Bad input to every public function of the spec and the model gives a NetlinkError (errno and
message), never another exception from deep inside."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlmmap.model import Kernel
from nlmmap.spec import abi, family, netlink
from nlmmap.spec.abi import NETLINK_RX_RING, NETLINK_TX_RING, RingRequest
from nlmmap.spec.errors import NetlinkError

junk = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
                 st.text(max_size=5), st.binary(max_size=40), st.lists(st.integers(0, 3), max_size=3))


def call_ok_or_netlink_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except NetlinkError as e:
        assert e.errno and e.message


def mapped_socket():
    s = Kernel().socket()
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 1, 1024, 4).pack())
    s.setsockopt(NETLINK_TX_RING, RingRequest(4096, 1, 2048, 2).pack())
    s.mmap(8192)
    return s


@given(a=junk, b=junk, c=junk)
def test_model_socket_calls_with_junk(a, b, c):
    s = mapped_socket()
    call_ok_or_netlink_error(s.setsockopt, a, b)
    call_ok_or_netlink_error(s.peek, a, b)
    call_ok_or_netlink_error(s.poke, a, b)
    call_ok_or_netlink_error(s.deliver, a, b if isinstance(b, str) else "ring", c)
    call_ok_or_netlink_error(s.deliver, a, "copy", c)
    call_ok_or_netlink_error(s.sendmsg, a, "peer")
    call_ok_or_netlink_error(s.sendmsg, a, b)
    call_ok_or_netlink_error(s.recvmsg, a)
    call_ok_or_netlink_error(s.mmap, a, b)
    call_ok_or_netlink_error(s.poll)


@given(a=junk, b=junk)
def test_spec_functions_with_junk(a, b):
    call_ok_or_netlink_error(abi.validate_ring_request, a)
    call_ok_or_netlink_error(abi.FrameHeader.unpack, a)
    call_ok_or_netlink_error(abi.socket_option, a)
    call_ok_or_netlink_error(lambda: list(netlink.split_messages(a)))
    call_ok_or_netlink_error(netlink.parse_attributes, a)
    call_ok_or_netlink_error(netlink.build_ack, a, b)
    call_ok_or_netlink_error(netlink.NlMsgHdr.unpack, a)
    call_ok_or_netlink_error(netlink.parse_queue_packet, a)
    call_ok_or_netlink_error(abi.RingGeometry(4096, 1, 1024, 4).frame_offset, a)


@given(a=junk, b=junk)
def test_family_rules_with_junk(a, b):
    """The test family's decisions take what a user sent (option bytes, groups, datagrams, flags)."""
    call_ok_or_netlink_error(family.socket_option_effect, a, b)
    call_ok_or_netlink_error(family.check_group, a)
    call_ok_or_netlink_error(family.check_delivery, a, b)
    call_ok_or_netlink_error(family.check_send_flags, a)
    call_ok_or_netlink_error(family.parse_dump_request, a)
    call_ok_or_netlink_error(lambda: list(family.rcv_skb(a, 1, cap_ack=False, answer=lambda h, r: family.family_answer(
        h, r, start_dump=lambda hdr, count, size: 0))))


@pytest.mark.parametrize("junk_bytes", [b"\xff" * 64, b"\x00" * 64, bytes(range(64))])
def test_kernel_side_survives_any_bytes_in_the_whole_mapping(junk_bytes):
    s = mapped_socket()
    for off in range(0, 8192, 64):
        s.poke(off, junk_bytes)
    for path in ("ring", "copy"):
        call_ok_or_netlink_error(s.deliver, b"m" * 30, path)
    call_ok_or_netlink_error(s.sendmsg, None, "kernel")
    call_ok_or_netlink_error(s.recvmsg, 100)
    assert "POLLOUT" in s.poll()
